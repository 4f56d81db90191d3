"""Execute one run: claim it, prepare every step, run them, distribute, record, clean up — whatever happens.

The store is the source of truth: each sub-state is committed before its steps act. A watcher thread renews
the run's lease, and kills the build VM at once when the run is canceled or its time is up (that ends any
command in flight; the pipeline then sees why and ends Canceled or Failed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from vmforge import netpolicy
from vmforge.disk import qemuimg
from vmforge.errors import ArmError
from vmforge.identity import imds
from vmforge.machine import accel
from vmforge.runner.access import RunAccess
from vmforge.runner import fingerprint
from vmforge.runner.build import distribution, plan
from vmforge.events import RunEvents
from vmforge.kinds.base import BuildError, Canceled, Context, TimedOut, assign_ids, cleanup_all, execute
from vmforge.artifacts import lineage
from vmforge.service import staging
from vmforge.service.runstate import RunState, RunSubState

log = logging.getLogger("vmforge.runner")

LEASE_SECONDS = 60
DEFAULT_TIMEOUT_MIN = 240  # buildTimeoutInMinutes 0 means AIB's default of 4 hours
SOURCE_CODES = {"PlatformImage": "BadPIRSource", "ManagedImage": "BadManagedImageSource",
                "SharedImageVersion": "BadSharedImageVersionSource"}


def run_dir(data_dir: Path, run_id: int) -> Path:
    return data_dir / "runs" / str(run_id)


def log_path(data_dir: Path, run_id: int) -> Path:
    return run_dir(data_dir, run_id) / "customization.log"


def clean_run_dir(work: Path, keep: set[str | None] | None = None) -> None:
    """Everything of a run's directory but its log and SBOM (and what ``keep`` names, e.g. an aborted disk)."""
    keep = {"customization.log", "sbom.spdx.json", *(keep or set())}  # the log and the SBOM stay
    if not work.is_dir():
        return
    for p in work.iterdir():
        if p.name in keep:
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def keep_disk(ctx: Context, ran: list) -> str:
    """errorHandling 'abort': keep the failed VM's disk as one standalone qcow2 (its overlay flattened with
    everything it is backed by, so it opens after the run's other files are gone); say where."""
    disk = ctx.state.get("disk")
    if not disk or not Path(disk).exists():
        return "errorHandling is 'abort', but the VM had no disk to keep."
    cleanup_all(ctx, [s for s in ran if s.kind == "Boot"])  # the VM holds the disk's lock
    kept = ctx.work_dir / f"kept-{Path(disk).stem}.qcow2"
    try:
        qemuimg.convert(disk, kept, "qcow2", src_fmt=ctx.state.get("disk_format", "qcow2"))
    except Exception as e:  # noqa: BLE001 — the run's failure is what matters; say why nothing was kept
        kept.unlink(missing_ok=True)
        return f"errorHandling is 'abort', but keeping the VM's disk failed: {e}"
    ctx.state["keep_disk"] = kept.name
    ctx.events.line(f"errorHandling 'abort': the VM's disk was kept as {kept} (standalone qcow2)", "vmforge")
    return (f"errorHandling is 'abort': the VM's disk was kept for inspection at {kept} (a standalone qcow2; "
            f"boot it with qemu-system-x86_64 -drive file={kept}).")


SERVER_STOPPED = ("The vmforge server stopped while this run was in progress: its build VM was stopped and its "
                  "disks removed, and the run was not re-queued (a half-customized VM cannot be resumed, and running "
                  "the customizers again unasked could repeat their side effects elsewhere). Run the template again.")


class Executor:
    """Runs builds for one process (the embedded worker, or a remote ``vmforge worker``)."""

    def __init__(self, services: Any, artifacts: Any, settings: Any) -> None:
        self.services = services
        self.runs = services.runs
        self.artifacts = artifacts
        self.settings = settings
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.probe_cache: dict[str, bool] = {}
        self.accelerator = accel.for_store(Path(settings.data_dir) / "accel.json")
        self._stopping: str | None = None
        self._active: dict[int, Context] = {}
        self._endings: dict[int, tuple[RunState, str, str | None] | None] = {}

    # ------------------------------------------------------------------ entry
    def __call__(self, run_id: int) -> None:
        if self._stopping:
            log.info("run %s not started: the server is stopping (it stays queued for the next start)", run_id)
            return
        if not self.runs.claim(run_id, self.owner, LEASE_SECONDS):
            log.info("run %s is not claimable (ended, or owned by another worker)", run_id)
            return
        self._endings[run_id] = None
        try:
            self._execute(run_id)
        except Exception as e:  # noqa: BLE001 — never leave a claimed run Running
            log.exception("run %s crashed", run_id)
            self._endings[run_id] = (RunState.FAILED, f"vmforge failed internally while running the build: {e}",
                                     "ServerError")
        finally:
            self._active.pop(run_id, None)
            ending = self._endings.pop(run_id, None) or (
                RunState.FAILED, "The run ended without a result (internal error).", "ServerError")
            # Recorded last: when a client sees the run end, its VMs and work files are already gone.
            if not self.runs.view(run_id).state.terminal:
                self.runs.transition(run_id, ending[0], message=ending[1], error_code=ending[2])

    def shutdown(self, wait: float = 30.0) -> list[int]:
        """The server is stopping (SIGTERM/SIGINT): stop every build VM of this process now, and wait (at most
        ``wait`` s) until each of those runs has cleaned up and recorded its ending (Failed, "the server
        stopped"). Runs not yet started stay queued and are dispatched again at the next start."""
        self._stopping = SERVER_STOPPED
        running = list(self._active)
        for run_id in running:
            self.kill(run_id)
        deadline = time.monotonic() + wait
        while (self._active or self._endings) and time.monotonic() < deadline:
            time.sleep(0.1)
        return running

    def kill(self, run_id: int) -> None:
        """Stop the VMs of a run of this process now (cancel)."""
        ctx = self._active.get(run_id)
        if ctx is not None:
            for key, vm in list(ctx.state.items()):
                if key.startswith("vm_") and vm is not None:
                    vm.kill()

    # ------------------------------------------------------------------ the run
    def _execute(self, run_id: int) -> None:
        info = self.runs.load(run_id)  # (template props, name, location)
        props, name, location = info["properties"], info["name"], info["location"]
        work = run_dir(self.settings.data_dir, run_id)
        work.mkdir(parents=True, exist_ok=True)
        events = RunEvents(log_path(self.settings.data_dir, run_id))
        self.runs.set_log_path(run_id, str(events.log_path))
        timeout_min = props.get("buildTimeoutInMinutes") or DEFAULT_TIMEOUT_MIN
        loop = asyncio.new_event_loop()
        ctx = Context(
            run_id=run_id, work_dir=work, data_dir=self.settings.data_dir, events=events, template=props,
            template_name=name, template_location=location,
            cancel_requested=lambda: bool(self._stopping) or self.runs.cancel_requested(run_id),
            fetch=self._fetcher(work),
            artifacts=self.artifacts, deadline=time.monotonic() + timeout_min * 60,
        )
        access = RunAccess(self.runs.db, info.get("identity"), info.get("writer"), info.get("writer_name"))
        ctx.authorize = access.check
        ctx.state["loop"] = loop
        ctx.state["accelerator"] = self.accelerator
        ctx.state["on_vm_started"] = lambda role: staging.stage(self.runs.db, run_id, role)
        self._active[run_id] = ctx
        stop_watch = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(ctx, stop_watch), daemon=True,
                                   name=f"vmforge-watch-{run_id}")
        watcher.start()
        ran: list = []
        try:
            events.telemetry(f"vmforge run {run_id} of image template '{name}' (timeout {timeout_min} min)")
            self.runs.transition(run_id, RunState.RUNNING, RunSubState.BUILDING)
            events.line(f"acting as {access.describe()}", "source")
            # Nothing boots before the run is known to be allowed: the source may be read (then it must exist),
            # and at least one target may be written.
            gone = staging.missing(self.runs.db, info["staging_group"]) if info.get("staging_group") else None
            if gone:
                events.line(gone, "staging")
                self._finish(run_id, RunState.FAILED, gone, "StagingResourceGroupNotFound", events=events)
                return
            source_refused, targets_refused = access.preflight(props)
            if source_refused:
                events.line(source_refused, "source")
                self._finish(run_id, RunState.FAILED, source_refused, "AuthorizationFailed", events=events)
                return
            try:
                resolved = self.artifacts.resolve_source(props["source"])
            except ArmError as e:
                code = SOURCE_CODES.get(props["source"].get("type"), "BadSourceType")
                events.line(f"source: {e.message}", "source")
                self._finish(run_id, RunState.FAILED, f"Source: {e.message}", code, events=events)
                return
            start = lineage.begin(self.runs.db, run_id, props["source"], resolved)  # a revoked source: no VM
            if start.refusal:
                events.line(start.refusal, "source")
                self._finish(run_id, RunState.FAILED, start.refusal, "SourceRevoked", events=events)
                return
            if start.warning:
                events.line(start.warning, "source")
            ctx.state["lineage"] = start.info
            if targets_refused and len(targets_refused) == len(props.get("distribute") or []):
                refusal = "; ".join(targets_refused)
                events.line(refusal, "distribute")
                self._finish(run_id, RunState.FAILED, refusal, "AuthorizationFailed", events=events)
                return
            self.runs.record_exact_version(run_id, resolved.exact_version)
            ctx.state.update(resolved=resolved, base_for_build=resolved.path, source_version=(
                resolved.exact_version.rsplit("/", 1)[-1] if resolved.exact_version else None),
                source_id=props["source"].get("imageId") or resolved.exact_version)
            ctx.os_type = resolved.os_type or "Linux"
            try:
                self._guest_network(ctx, info)
            except (imds.IdentityMissing, ValueError, RuntimeError) as e:
                events.line(str(e), "network")
                self._finish(run_id, RunState.FAILED, f"The build VM cannot be prepared: {e}",
                             "IdentityNotFound" if isinstance(e, imds.IdentityMissing) else "Other", events=events)
                return
            steps = plan(ctx, self.probe_cache)
            distributors = distribution(ctx)
            assign_ids(resolved.path.stem, steps + distributors)
            problems = [p for s in steps + distributors for p in s.prepare(ctx)]
            if problems:
                self._finish(run_id, RunState.FAILED, "The template cannot be built: " + "; ".join(problems),
                             "BadCustomizerType", events=events)
                return
            outcome = execute(ctx, steps, lambda phase: self.runs.transition(run_id, RunState.RUNNING, phase))
            ran = outcome.ran
            if self._ended_by_watch(ctx, outcome.error, run_id, events):
                return
            validation_failed = None
            if outcome.error is not None:
                step = outcome.failed
                where = f"{step.kind} \"{step.name}\"" if step is not None else "the build"
                msg = f"{where} failed: {outcome.error}. See the log at {events.log_path}."
                validating = step is not None and step.phase is RunSubState.VALIDATING
                policy = (props.get("errorHandling") or {}).get(
                    "onValidationError" if validating else "onCustomizerError", "cleanup")
                if policy == "abort":
                    msg += " " + keep_disk(ctx, ran)
                code = getattr(outcome.error, "code", "Other")
                if not (validating and (props.get("validate") or {}).get("continueDistributeOnFailure")):
                    self._finish(run_id, RunState.FAILED, msg, code, events=events)
                    return
                validation_failed = msg
            if props.get("validate", {}).get("sourceValidationOnly"):
                ctx.state["image_path"] = ctx.state["resolved"].path
                # What is distributed is the source as it was: not the blank data disks the validators saw.
                ctx.state.pop("data_disks", None)
            cleanup_all(ctx, [s for s in ran if s.kind in ("Boot",)])  # VMs off before distribution
            self._distribute(ctx, distributors, validation_failed)
        finally:
            stop_watch.set()
            watcher.join(5)
            cleanup_all(ctx, ran)
            staging.unstage(self.runs.db, run_id)
            self._remove_work_files(ctx)
            loop.close()
            events.close()

    def _guest_network(self, ctx: Context, info: dict[str, Any]) -> None:
        """What the run's VMs may reach (``Settings.build_deny``/``build_allow``, this host's addresses now) and
        the metadata service they alone see (``vmforge.identity.imds``)."""
        ctx.state["guest_policy"] = netpolicy.policy_from_settings(self.settings)
        ctx.state["metadata_app"] = imds.for_run(
            self.services.db, self.settings, ctx.template, name=ctx.template_name, location=ctx.template_location,
            subscription=info.get("subscription"), group=info.get("group"), os_type=ctx.os_type)

    def _distribute(self, ctx: Context, distributors: list, validation_failed: str | None) -> None:
        run_id, events = ctx.run_id, ctx.events
        self.runs.transition(run_id, RunState.RUNNING, RunSubState.DISTRIBUTING)
        failures = []
        for i, step in enumerate(distributors, 1):
            try:
                ctx.check()
            except (Canceled, TimedOut) as e:
                self._ended_by_watch(ctx, e, run_id, events)
                return
            name = step.options["runOutputName"]
            from vmforge.events import StepInfo

            info = StepInfo(i, len(distributors), "Distributing", step.kind, name)
            events.step_started(info)
            t0 = time.monotonic()
            try:
                step.run(ctx)
                out = ctx.outputs.get(name, {})
                self.runs.record_output(run_id, name, artifact_id=out.get("artifact_id"),
                                        artifact_uri=out.get("artifact_uri"))
                lineage.record(self.runs.db, ctx.state.get("lineage"), name, step.kind, out, events)
                events.step_ended(info, time.monotonic() - t0, ok=True)
            except Exception as e:  # noqa: BLE001 — one failing distributor must not stop the others
                msg = getattr(e, "message", None) or str(e)
                events.line(f"{step.kind} \"{name}\" failed: {msg}", step.kind)
                events.step_ended(info, time.monotonic() - t0, ok=False)
                self.runs.record_output(run_id, name, state="Failed")
                failures.append(f"{step.kind} \"{name}\": {msg}")
        if validation_failed:
            self._finish(run_id, RunState.FAILED, validation_failed + " The image was distributed anyway "
                         "(continueDistributeOnFailure).", "ValidationFailed", events=events)
        elif failures and len(failures) == len(distributors):
            self._finish(run_id, RunState.FAILED, "Every distributor failed: " + "; ".join(failures),
                         "BadDistributeType", events=events)
        elif failures:
            self._finish(run_id, RunState.PARTIALLY_SUCCEEDED, "Some distributors failed: " + "; ".join(failures)
                         + f" See the log at {events.log_path}.", "PartiallySucceeded", events=events)
        else:
            fingerprint.record(self.runs.db, run_id, ctx.state, ctx.template)  # for onChange Schedule triggers
            self._finish(run_id, RunState.SUCCEEDED, "", None, events=events)

    # ------------------------------------------------------------------ endings
    def _ended_by_watch(self, ctx: Context, error: BaseException | None, run_id: int, events: RunEvents) -> bool:
        if self._stopping and error is not None:
            self._finish(run_id, RunState.FAILED, self._stopping, "ServerStopped", events=events)
            return True
        if isinstance(error, Canceled) or (error is not None and self.runs.cancel_requested(run_id)):
            self._finish(run_id, RunState.CANCELED, "The run was canceled.", "Canceled", events=events)
            return True
        if isinstance(error, TimedOut) or (error is not None and ctx.deadline and time.monotonic() > ctx.deadline):
            minutes = ctx.template.get("buildTimeoutInMinutes") or DEFAULT_TIMEOUT_MIN
            self._finish(run_id, RunState.FAILED, f"The build exceeded its timeout of {minutes} minutes "
                         "(buildTimeoutInMinutes) and was stopped.", "BuildTimeout", events=events)
            return True
        return False

    def _finish(self, run_id: int, state: RunState, message: str, code: str | None, *,
                events: RunEvents | None = None) -> None:
        """Decide the run's ending; it is recorded once everything is cleaned up (see ``__call__``)."""
        if events is not None:
            events.telemetry(f"run ended {state.value}" + (f": {message}" if message else ""))
        if self._endings.get(run_id) is None:
            self._endings[run_id] = (state, message, code)

    # ------------------------------------------------------------------ helpers
    def _watch(self, ctx: Context, stop: threading.Event) -> None:
        last_lease = time.monotonic()
        while not stop.wait(0.5):
            try:
                if time.monotonic() - last_lease > LEASE_SECONDS / 3:
                    self.runs.renew(ctx.run_id, self.owner, LEASE_SECONDS)
                    last_lease = time.monotonic()
                reason = None
                if self.runs.cancel_requested(ctx.run_id):
                    reason = "cancel requested"
                elif ctx.deadline is not None and time.monotonic() > ctx.deadline:
                    reason = "build timeout reached"
                if reason:
                    ctx.events.line(f"{reason}: stopping the build VM", "vmforge")
                    self.kill(ctx.run_id)
                    return
            except Exception:  # noqa: BLE001 — the watcher must survive a transient DB error
                log.exception("watcher of run %s", ctx.run_id)

    def _fetcher(self, work: Path):  # noqa: ANN202
        """``ctx.fetch``: each (url, sha256) is downloaded once per run (the Downloads step fetches them all
        before the first boot; the steps then get the same verified file)."""
        downloads = work / "downloads"
        done: dict[tuple[str, str | None], Path] = {}

        def fetch(url: str, sha256: str | None) -> Path:
            from vmforge import fetch as fetch_mod

            key = (url, (sha256 or "").lower() or None)
            if key in done and done[key].exists():
                return done[key]
            downloads.mkdir(parents=True, exist_ok=True)
            dest = downloads / uuid.uuid4().hex
            try:
                done[key] = fetch_mod.download(url, dest, sha256=sha256,
                                               policy=fetch_mod.policy_from_settings(self.settings))
            except ArmError as e:
                raise BuildError(e.message, code=getattr(e, "code", None) or "DownloadFailed") from e
            return done[key]

        return fetch

    def _remove_work_files(self, ctx: Context) -> None:
        """Everything of the run but its log (and an aborted disk kept for inspection) goes."""
        clean_run_dir(ctx.work_dir, {ctx.state.get("keep_disk")})
