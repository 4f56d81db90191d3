"""The build engine as the services see it: ``submit`` a run, ``cancel`` it, ``recover`` after a restart.

Runs go out as Celery tasks ("run R is ready"); the store holds their state. By default the broker is
in-process and an embedded worker thread executes them (``vmforge.runner.embedded``).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

from vmforge.runner.celery_app import run_build, set_executor
from vmforge.runner.execute import Executor, clean_run_dir, run_dir
from vmforge.service.ids import utcnow
from vmforge.service.runstate import RunState

log = logging.getLogger("vmforge.engine")


def names_path(cmdline: bytes, path: Path) -> bool:
    """Whether a NUL-separated command line names ``path`` or something inside it — exactly: the run
    directory ``runs/1`` is not named by ``runs/10/vm-build/serial.log``."""
    base = str(path).rstrip("/").encode()
    for arg in cmdline.split(b"\0"):
        i = arg.find(base)
        while i != -1:
            end = i + len(base)
            if (i == 0 or arg[i - 1:i] in (b"=", b":", b",")) and (end == len(arg) or arg[end:end + 1] in (b"/", b",")):
                return True
            i = arg.find(base, i + 1)
    return False


def kill_leftovers(path: Path) -> int:
    """SIGKILL processes (QEMU, pasta) whose command line names ``path`` — left by a crashed server."""
    killed = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if names_path(f.read(), path):
                    os.kill(int(pid), signal.SIGKILL)
                    killed += 1
        except OSError:
            continue
    return killed


class CeleryEngine:
    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.runs: Any = None
        self.executor: Executor | None = None

    def attach(self, services: Any, artifacts: Any) -> None:
        self.runs = services.runs
        self.executor = Executor(services, artifacts, self.settings)
        set_executor(self.executor)

    def shutdown(self) -> list[int]:
        """The server is stopping: stop this process's builds (they end Failed, "the server stopped")."""
        return self.executor.shutdown() if self.executor is not None else []

    def submit(self, run_id: int) -> None:
        run_build.apply_async(args=[run_id])

    def cancel(self, run_id: int) -> None:
        view = self.runs.view(run_id)
        if view.state.terminal:
            return
        if self.executor is not None:
            self.executor.kill(run_id)
        if not self.runs.is_claimed(run_id):
            # Not started anywhere yet: nothing to stop, it ends here.
            self.runs.transition(run_id, RunState.CANCELED, message="The run was canceled before it started.")

    def recover(self) -> None:
        """Runs left active by a crash: one never started is dispatched again; one that was executing ends
        Failed with the reason, after its QEMU processes and disks are removed."""
        for run_id in self.runs.active_runs():
            lease = self.runs.lease(run_id)
            if lease is not None and lease[1] is not None and lease[1] > utcnow() and lease[0] and \
                    not lease[0].startswith(f"{os.uname().nodename}:"):
                continue  # a live worker on another host owns it
            work = run_dir(self.settings.data_dir, run_id)
            if lease is None or lease[0] is None:
                log.info("re-dispatching run %s (never started)", run_id)
                self.submit(run_id)
                continue
            killed = kill_leftovers(work)
            clean_run_dir(work)
            msg = ("The vmforge server stopped while this run was in progress; the run could not continue. Its "
                   f"build VM was stopped ({killed} process(es)) and its disks removed. Run the template again.")
            log.warning("run %s: %s", run_id, msg)
            self.runs.transition(run_id, RunState.FAILED, message=msg, error_code="ServerRestarted")
