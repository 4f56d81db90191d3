"""The step framework (after Packer's multistep): every step is prepared — validated, no side effects — before
the first runs; steps run in order with cancellation checked between them; the cleanups of the steps that ran
run last-in-first-out, whatever the ending."""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmforge.events import RunEvents, StepInfo
from vmforge.service.runstate import RunSubState


class BuildError(Exception):
    """A step failed; ``code`` is AIB's error code where it has one."""

    def __init__(self, message: str, code: str = "Other") -> None:
        super().__init__(message)
        self.code = code


class Canceled(Exception):
    pass


class TimedOut(Exception):
    pass


@dataclass
class Context:
    """What the steps of one run share."""

    run_id: int
    work_dir: Path
    data_dir: Path
    events: RunEvents
    template: dict[str, Any]  # the template's properties
    template_name: str
    template_location: str
    cancel_requested: Callable[[], bool]
    fetch: Callable[[str, str | None], Path]  # (url, sha256) → local file, verified
    artifacts: Any  # vmforge.artifacts.Artifacts
    deadline: float | None = None
    os_type: str = "Linux"
    guest: Any = None  # vmforge.runner.guest.Guest of the VM the current phase works in
    state: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # runOutputName → artifact id / uri
    # (verb, resource id, what) → None or BuildError: may the template's identity do this? Set by the executor
    # (vmforge.runner.access.RunAccess.check); step unit tests that build a Context by hand leave it unset.
    authorize: Callable[[str, str, str], None] | None = None

    def require(self, verb: str, resource_id: str, what: str) -> None:
        if self.authorize is not None:
            self.authorize(verb, resource_id, what)

    def check(self) -> None:
        if self.cancel_requested():
            raise Canceled()
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimedOut()


_PHASES = {"customize": RunSubState.CUSTOMIZING, "validate": RunSubState.VALIDATING,
           "distribute": RunSubState.DISTRIBUTING}


class Step(ABC):
    phase: RunSubState = RunSubState.BUILDING
    kind: str = "step"

    def __init__(self, name: str = "", options: dict[str, Any] | None = None, phase_name: str | None = None) -> None:
        """``phase_name`` (customize / validate / distribute) is the template list the step comes from; a kind
        registered for two lists (Shell: customizer and validator) runs in that list's phase."""
        self.name = name
        self.options = options or {}
        self.step_id = ""
        self.json_path = ""  # where the step is in the template, e.g. properties.customize[2] (set by make_step)
        if phase_name is not None:
            self.phase = _PHASES[phase_name]

    def prepare(self, ctx: Context) -> list[str]:
        """Check everything this step needs, without side effects; return the problems found."""
        return []

    download_field: str | None = None  # the option holding a URL the server downloads (scriptUri, sourceUri)

    def downloads(self) -> list[tuple[str, str | None, str]]:
        """What the server downloads for this step: (url, sha256 or None, JSON path of the URL). All of a run's
        downloads are fetched and checked before its first VM starts; ``ctx.fetch`` then answers from them."""
        url = self.options.get(self.download_field) if self.download_field else None
        if not url:
            return []
        return [(url, self.options.get("sha256Checksum") or None, f"{self.json_path}.{self.download_field}")]

    @abstractmethod
    def run(self, ctx: Context) -> None: ...

    def cleanup(self, ctx: Context) -> None:
        """Undo what run() left behind that must not outlive the run (called even if run() failed)."""


def assign_ids(source_digest: str, steps: list[Step]) -> None:
    """Content-addressed step ids: the hash of the source digest and of every step up to and including this one,
    so a later cache can snapshot after each step and reuse it when nothing before it changed."""
    h = hashlib.sha256(source_digest.encode())
    for step in steps:
        h.update(json.dumps([step.kind, step.name, step.options], sort_keys=True, default=str).encode())
        step.step_id = h.copy().hexdigest()


@dataclass
class Outcome:
    ran: list[Step]
    failed: Step | None = None
    error: BaseException | None = None


def execute(ctx: Context, steps: list[Step], on_phase: Callable[[RunSubState], None]) -> Outcome:
    """Run ``steps`` in order. Does not clean up: the caller decides when (``cleanup_all``), which is how
    ``errorHandling: abort`` keeps the build VM's disk for inspection."""
    ran: list[Step] = []
    total = len(steps)
    phase: RunSubState | None = None
    for i, step in enumerate(steps, 1):
        try:
            ctx.check()
        except (Canceled, TimedOut) as e:
            return Outcome(ran, None, e)
        if step.phase != phase:
            phase = step.phase
            on_phase(phase)
        info = StepInfo(i, total, step.phase.value, step.kind, step.name)
        ctx.events.step_started(info)
        t0 = time.monotonic()
        ran.append(step)
        try:
            step.run(ctx)
        except BaseException as e:  # noqa: BLE001 — every ending is recorded, then re-judged by the caller
            ctx.events.step_ended(info, time.monotonic() - t0, ok=False)
            ctx.events.line(f"{step.kind} failed: {e}")
            return Outcome(ran, step, e)
        ctx.events.step_ended(info, time.monotonic() - t0, ok=True)
    return Outcome(ran)


def cleanup_all(ctx: Context, ran: list[Step]) -> list[str]:
    problems = []
    for step in reversed(ran):
        try:
            step.cleanup(ctx)
        except Exception as e:  # noqa: BLE001 — one failed cleanup must not skip the others
            problems.append(f"{step.kind}: {e}")
            ctx.events.line(f"cleanup of {step.kind} failed: {e}")
    return problems
