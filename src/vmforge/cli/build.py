"""``vmforge build``, ``vmforge run`` and ``vmforge logs``: start runs and watch them.

``build`` creates the template (an identical one is reused) and runs it; ``run`` runs an existing template.
Both show the current sub-state and step, the time per step and the log as it streams. The exit code is the
run's outcome: 0 Succeeded, 1 Failed, 2 PartiallySucceeded, 3 Canceled. The first Ctrl-C cancels the run and
keeps watching it to its end; a second Ctrl-C detaches (exit 130) and leaves the run as it is.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import httpx
import typer

from vmforge.cli.client import Client, ClientError, is_missing_route
from vmforge.cli.output import (
    GROUP_DEFAULT,
    SUB_DEFAULT,
    ApiOpt,
    DataDirOpt,
    GroupOpt,
    ServerOpt,
    SubOpt,
    closes_clients,
    connect,
    console,
    fail,
    guarded,
    is_tty,
    print_error,
)
from vmforge.cli.progress import TERMINAL, LiveDisplay, PlainDisplay, Tracker, exit_code, fmt_secs, run_info
from vmforge.cli.templates import CreateGroupOpt, load_body, put_template

POLL = 1.0
FAIL_TAIL = 20


class LogFollower(threading.Thread):
    """Streams ``{template}/runs/{id}/log`` (``follow=true``) into a queue of lines, reconnecting from the last
    byte offset when the stream drops, until the run ended and the stream closed, or ``stop`` is set."""

    def __init__(self, client: Client, name: str, run_id: str, follow: bool = True) -> None:
        super().__init__(daemon=True, name="vmforge-log")
        self.client, self.path, self.follow = client, client.target.template(name) + f"/runs/{run_id}/log", follow
        self.lines: queue.Queue[str] = queue.Queue()
        self.stop = threading.Event()
        self.offset = 0
        self.error: ClientError | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._stream()
                return  # the server ends a followed stream when the run ends
            except ClientError as e:
                self.error = e
                return
            except httpx.HTTPError as e:  # a dropped or timed-out stream: resume from the offset
                if not self.follow:
                    self.error = ClientError("ConnectionFailed", str(e))
                    return
            self.stop.wait(POLL)

    def _stream(self) -> None:
        params = {"api-version": self.client.target.api_version, "offset": str(self.offset),
                  "follow": "true" if self.follow else "false"}
        with self.client.http.stream("GET", self.path, params=params) as r:
            if not r.is_success:
                r.read()
                err = ClientError.from_response(r)
                if is_missing_route(err):
                    raise ClientError("LogsUnavailable", "this server does not serve run logs (it predates "
                                      "vmforge's build engine)", status=404)
                raise err
            self.offset = int(r.headers.get("x-vmforge-log-offset", self.offset))
            pending = b""
            for chunk in r.iter_bytes():
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    self.offset += len(raw) + 1
                    self.lines.put(raw.decode("utf-8", "replace").rstrip("\r"))
                if self.stop.is_set():
                    return
            if pending:  # a partial last line: shown now, read again whole on the next connection
                self.lines.put(pending.decode("utf-8", "replace"))
                self.offset += len(pending)

    def drain(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return out


def watch(client: Client, name: str, op_url: str | None = None, show_log: bool = True) -> int:
    """Follow the latest run of ``name`` to its end with a live display; return the run's exit code."""
    tracker = Tracker()
    con = console()
    display = (LiveDisplay if is_tty() else PlainDisplay)(tracker, con)
    run = run_info(client, name)
    follower = LogFollower(client, name, str(run["id"])) if show_log and run.get("id") is not None else None
    if follower:
        follower.start()
    interrupts = 0
    with display:
        display.run(run)
        next_poll = time.monotonic() + POLL
        while True:
            try:
                for line in follower.drain() if follower else []:
                    display.line(line)
                if time.monotonic() >= next_poll:
                    run = run_info(client, name, str(run["id"]) if run.get("id") is not None else "latest")
                    display.run(run)
                    next_poll = time.monotonic() + POLL
                if run.get("runState") in TERMINAL:
                    break
                time.sleep(0.1)
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts > 1:
                    display.note(f"detached; the run goes on. Watch it again: vmforge logs {name} -f")
                    raise typer.Exit(130) from None
                display.note("canceling the run… (Ctrl-C again to detach and leave it running)")
                guarded(lambda: client.request("POST", client.target.template(name) + "/cancel"))
        if follower:
            follower.join(timeout=5)
            for line in follower.drain():
                display.line(line)
            follower.stop.set()
    summarize(tracker, run, client, name, op_url)
    return exit_code(run.get("runState"))


def summarize(tracker: Tracker, run: dict[str, Any], client: Client, name: str, op_url: str | None) -> None:
    """The outcome on stderr; on failure the failing step's last log lines, the error and the log's location."""
    state = run.get("runState") or "Unknown"
    took = fmt_secs(time.monotonic() - tracker.started)
    if state == "Succeeded":
        typer.echo(f"run {run.get('id') or ''} Succeeded in {took}".replace("  ", " "), err=True)
        return
    step = tracker.failing_step()
    lines = list(step.lines if step else tracker.tail)[-FAIL_TAIL:]
    if lines:
        typer.echo(f"--- last log lines{' of ' + step.title if step else ''}:", err=True)
        for line in lines:
            typer.echo(f"  {line}", err=True)
    err = ClientError(state, run.get("message") or f"The run ended {state}.")
    if op_url and state != "Canceled":
        try:
            op_error = client.poll(op_url).json().get("error") or {}
        except (ClientError, ValueError):
            op_error = {}
        if op_error.get("code"):
            err = ClientError(op_error["code"], op_error.get("message") or err.message, op_error.get("details"))
    print_error(err)
    if run.get("logUrl"):
        typer.echo(f"log: {run['logUrl']}", err=True)
    elif run.get("id") is not None:
        typer.echo(f"log: vmforge logs {name} --run {run['id']}", err=True)


def start_run(client: Client, name: str) -> str | None:
    """POST run; the Azure-AsyncOperation URL of the run operation."""
    return client.request("POST", client.target.template(name) + "/run").headers.get("Azure-AsyncOperation")


def build(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Template JSON file.")],
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Template name (default: the resource's "
                                                "name, else the file name without .json).")] = None,
    create_group: CreateGroupOpt = False, api_version: ApiOpt = "2025-10-01", server: ServerOpt = None,
    data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT,
) -> None:
    """Create (or reuse) an image template from a file, run it and watch it.

    Exit code: 0 Succeeded, 1 Failed, 2 PartiallySucceeded, 3 Canceled.
    The first Ctrl-C cancels the run (and keeps watching it); a second one detaches. Example:

        vmforge build ubuntu-nginx.json -g images --create-group
    """
    client = connect(server, data_dir, subscription, group, api_version)
    tname, body = guarded(lambda: load_body(file, name))
    _, created = guarded(lambda: put_template(client, tname, body, create_group=create_group))
    typer.echo(f"template {tname}: {'created' if created else 'unchanged, reused'}", err=True)
    op_url = guarded(lambda: start_run(client, tname))
    raise typer.Exit(guarded(lambda: watch(client, tname, op_url)))


def run(
    name: Annotated[str, typer.Argument(help="Image template name.", show_default=False)],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Show steps and the log live while it runs.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the run is started.")] = False,
    api_version: ApiOpt = "2025-10-01", server: ServerOpt = None, data_dir: DataDirOpt = None,
    subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT,
) -> None:
    """Run an image template; wait for the run to end (exit 0/1/2/3 as `build`), or --no-wait.

    Example: vmforge run ubuntu-nginx --follow
    """
    client = connect(server, data_dir, subscription, group, api_version)
    op_url = guarded(lambda: start_run(client, name))
    if no_wait:
        typer.echo(f"{name}: run started", err=True)
        return
    raise typer.Exit(guarded(lambda: watch(client, name, op_url, show_log=follow)))


def logs(
    name: Annotated[str, typer.Argument(help="Image template name.", show_default=False)],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming while the run is active.")] = False,
    run_id: Annotated[str, typer.Option("--run", help="Run id (default: the latest run).")] = "latest",
    api_version: ApiOpt = "2025-10-01", server: ServerOpt = None, data_dir: DataDirOpt = None,
    subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT,
) -> None:
    """Print a run's customization.log (with -f, follow it until the run ends).

    Example: vmforge logs ubuntu-nginx -f
    """
    client = connect(server, data_dir, subscription, group, api_version)
    follower = LogFollower(client, name, run_id, follow=follow)
    follower.start()
    try:
        while follower.is_alive() or not follower.lines.empty():
            for line in follower.drain():
                typer.echo(line)
            follower.join(timeout=0.1)
    except KeyboardInterrupt:
        follower.stop.set()
        raise typer.Exit(130) from None
    if follower.error:
        fail(follower.error)


def register(root: typer.Typer) -> None:
    """Add ``build``, ``run`` and ``logs`` to the top-level app."""
    root.command("build")(closes_clients(build))
    root.command("run")(closes_clients(run))
    root.command("logs")(closes_clients(logs))
