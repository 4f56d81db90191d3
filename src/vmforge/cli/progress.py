"""Run progress for the CLI: run info from the server, the telemetry lines of customization.log turned into step
progress, the exit code of a run, and the two displays (a live Rich view on a terminal, plain lines otherwise).

customization.log's telemetry lines (``vmforge.events``)::

    [2026/11/25 14:00:00] (telemetry) Starting provisioner Shell "install nginx" (Customizing 2/5)
    [2026/11/25 14:00:01] (telemetry) ending Shell "install nginx" - success after 1.2s
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.spinner import Spinner
from rich.text import Text

from vmforge.cli.client import Client, ClientError, is_missing_route

EXIT_CODES = {"Succeeded": 0, "Failed": 1, "PartiallySucceeded": 2, "Canceled": 3}
TERMINAL = frozenset(EXIT_CODES)
_PREFIX = r"^\[(?P<ts>[^\]]+)\] (?:\[[^\]]*\] )?\(telemetry\) "
START = re.compile(_PREFIX + r'Starting provisioner (?P<kind>\S+)(?: "(?P<name>.*)")? '
                   r"\((?P<phase>\w+) (?P<index>\d+)/(?P<total>\d+)\)\s*$")
END = re.compile(_PREFIX + r'ending (?P<kind>\S+)(?: "(?P<name>.*)")? - (?P<result>\w+) after (?P<secs>[\d.]+)s\s*$')


def exit_code(run_state: str | None) -> int:
    """0 Succeeded, 1 Failed (and anything unknown), 2 PartiallySucceeded, 3 Canceled."""
    return EXIT_CODES.get(run_state or "", 1)


def run_info(client: Client, name: str, run_id: str = "latest") -> dict[str, Any]:
    """A run (``GET {template}/runs/{id}``); on a server without the runs route, the template's
    ``lastRunStatus`` in the same shape (no id, step or log)."""
    try:
        return client.get_json(client.target.template(name) + f"/runs/{run_id}")
    except ClientError as e:
        if not is_missing_route(e):
            raise
    status = client.get_json(client.target.template(name)).get("properties", {}).get("lastRunStatus")
    if not status:
        raise ClientError("RunNotFound", f"the image template '{name}' has not run yet", status=404)
    return {"id": None, "currentStep": None, "logUrl": None, **status}


def list_runs(client: Client, name: str) -> list[dict[str, Any]]:
    """The runs of a template, newest first (only the last one on a server without the runs route)."""
    try:
        return client.list_all(client.target.template(name) + "/runs")
    except ClientError as e:
        if not is_missing_route(e):
            raise
    try:
        return [run_info(client, name)]
    except ClientError as e:
        if e.code == "RunNotFound":
            return []
        raise


@dataclass
class Step:
    index: int
    total: int
    phase: str
    kind: str
    name: str
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None
    result: str | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def title(self) -> str:
        return f"{self.phase} {self.index}/{self.total} · {self.kind}" + (f' "{self.name}"' if self.name else "")

    def elapsed(self) -> float:
        return self.seconds if self.seconds is not None else time.monotonic() - self.started


@dataclass
class Tracker:
    """What is known of a run: its state, its steps (from telemetry lines and ``currentStep``), the log tail."""

    state: str = "Running"
    sub_state: str | None = None
    message: str = ""
    steps: list[Step] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    started: float = field(default_factory=time.monotonic)

    @property
    def current(self) -> Step | None:
        return self.steps[-1] if self.steps and self.steps[-1].result is None else None

    def _find(self, phase: str, index: int) -> Step | None:
        return next((s for s in self.steps if s.phase == phase and s.index == index), None)

    def feed_line(self, line: str) -> Step | None:
        """Take one log line; returns the step it started or ended, if it is a telemetry line."""
        self.tail.append(line)
        if m := START.match(line):
            step = self._find(m["phase"], int(m["index"]))
            if step is None:
                step = Step(int(m["index"]), int(m["total"]), m["phase"], m["kind"], m["name"] or "")
                self.steps.append(step)
            self.sub_state = step.phase
            step.lines.append(line)
            return step
        cur = self.current
        if m := END.match(line):
            step = cur if cur and cur.kind == m["kind"] else next(
                (s for s in reversed(self.steps) if s.kind == m["kind"] and s.result is None), None)
            if step is not None:
                step.seconds, step.result = float(m["secs"]), m["result"]
                step.lines.append(line)
            return step
        if cur is not None:
            cur.lines.append(line)
        return None

    def feed_run(self, run: dict[str, Any]) -> bool:
        """Take run info; True when the state, sub-state or step changed."""
        before = (self.state, self.sub_state, self.current and self.current.title)
        self.state = run.get("runState") or self.state
        self.sub_state = run.get("runSubState") or self.sub_state
        self.message = run.get("message") or self.message
        cs = run.get("currentStep")
        if isinstance(cs, dict) and cs.get("index") is not None:
            step = self._find(str(cs.get("phase")), int(cs["index"]))
            if step is None:
                for s in self.steps:  # a newer step started: the earlier ones are over
                    s.result = s.result or "done"
                self.steps.append(Step(int(cs["index"]), int(cs.get("total") or 0), str(cs.get("phase")),
                                       str(cs.get("kind") or ""), str(cs.get("name") or "")))
        return before != (self.state, self.sub_state, self.current and self.current.title)

    def headline(self) -> str:
        if self.state in TERMINAL:
            return self.state
        cur = self.current
        if cur is not None:
            return cur.title
        return " · ".join(x for x in (self.state, self.sub_state) if x)

    def failing_step(self) -> Step | None:
        return next((s for s in reversed(self.steps) if s.result == "failure"), None) or self.current


def fmt_secs(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{seconds:.1f}s"


class PlainDisplay:
    """Line output for pipes and CI: state changes as ``==>`` lines, every log line as it comes."""

    def __init__(self, tracker: Tracker, console: Console) -> None:
        self.t, self.console, self._last = tracker, console, ""

    def __enter__(self) -> "PlainDisplay":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def line(self, text: str) -> None:
        step = self.t.feed_line(text)
        self.console.print(text, markup=False, highlight=False)
        if step is not None and step.result is None:
            self._headline()

    def run(self, run: dict[str, Any]) -> None:
        self.t.feed_run(run)
        self._headline()

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def _headline(self) -> None:
        h = self.t.headline()
        if h != self._last:
            self._last = h
            self.console.print(f"==> {h}", markup=False, highlight=False)


class LiveDisplay(PlainDisplay):
    """A live view on a terminal: finished steps with their times, the current step with a spinner and its
    elapsed time, and the last log lines beneath."""

    TAIL = 12

    def __init__(self, tracker: Tracker, console: Console) -> None:
        super().__init__(tracker, console)
        from rich.live import Live

        self.live = Live(get_renderable=self.render, console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> "LiveDisplay":
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def line(self, text: str) -> None:
        self.t.feed_line(text)

    def run(self, run: dict[str, Any]) -> None:
        self.t.feed_run(run)

    def note(self, text: str) -> None:
        self.live.console.print(text, markup=False, highlight=False)

    def render(self) -> RenderableType:
        marks = {"success": ("✓", "green"), "failure": ("✗", "red"), "done": ("·", "dim")}
        rows: list[RenderableType] = []
        for s in self.t.steps:
            if s.result is not None:
                mark, style = marks.get(s.result, ("·", "dim"))
                rows.append(Text.assemble((f" {mark} ", style), s.title, (f"  {fmt_secs(s.elapsed())}", "dim")))
        cur = self.t.current
        head = f"{self.t.headline()}  {fmt_secs(cur.elapsed() if cur else time.monotonic() - self.t.started)}"
        rows.append(Spinner("dots", Text(head, style="bold")) if self.t.state not in TERMINAL else Text(head))
        for line in list(self.t.tail)[-self.TAIL:]:
            rows.append(Text("   " + line, style="dim", overflow="ellipsis", no_wrap=True))
        return Group(*rows)
