"""Runs: start, cancel, move through the state machine, record outputs.

The store is the single source of truth: every transition is committed before it is acted on, and the
template's ``lastRunStatus`` is written in the same transaction as the run's row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from vmforge.errors import Conflict, NotFound
from vmforge.events import redact
from vmforge.service.ids import TemplatePath, iso, utcnow
from vmforge.service.runstate import RunState, RunSubState, check_transition
from vmforge.service.templates import TemplateService
from vmforge.store.models import Operation, Run, RunOutput, Template


@dataclass
class RunView:
    id: int
    template_id: int
    state: RunState
    sub_state: RunSubState | None
    message: str
    cancel_requested: bool


def _status(run: Run) -> dict[str, Any]:
    d: dict[str, Any] = {"startTime": iso(run.start_time), "runState": run.state}
    if run.end_time is not None:
        d["endTime"] = iso(run.end_time)
    if run.sub_state is not None and run.state in (RunState.RUNNING.value, RunState.CANCELING.value):
        d["runSubState"] = run.sub_state
    d["message"] = run.message or ""
    return d


class RunService:
    def __init__(self, templates: TemplateService) -> None:
        self.templates = templates
        self.db = templates.db

    def start(self, path: TemplatePath) -> Operation:
        with self.db.session() as s:
            t = self.templates._require(s, path, lock=True)
            if t.provisioning_state != "Succeeded":
                raise Conflict(
                    f"The image template '{path.name}' is {t.provisioning_state.lower()}; it can run once its "
                    "provisioning has succeeded.",
                    code="Conflict",
                )
            if self.templates._active_run(s, t) is not None:
                raise Conflict(
                    f"The image template '{path.name}' already has a run in progress. Wait for it to end, or cancel it.",
                    code="Conflict",
                )
            run, op = self.templates.new_run(s, t)
            run_id = run.id
        self.templates.engine.submit(run_id)
        return op

    def cancel(self, path: TemplatePath) -> Operation:
        with self.db.session() as s:
            t = self.templates._require(s, path, lock=True)
            run = self.templates._active_run(s, t)
            if run is None:
                raise Conflict(
                    f"The image template '{path.name}' has no run in progress to cancel.", code="Conflict"
                )
            if run.state == RunState.RUNNING.value:
                check_transition(RunState.RUNNING, None, RunState.CANCELING, None)
                run.state = RunState.CANCELING.value
                run.message = "Cancel requested."
            run.cancel_requested = True
            t.last_run_status = _status(run)
            op = self.templates._operation(s, t, "cancel", run_id=run.id)
            run_id = run.id
        self.templates.engine.cancel(run_id)
        return op

    def view(self, run_id: int) -> RunView:
        with self.db.read() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFound(f"run {run_id} not found")
            return RunView(run.id, run.template_id, RunState(run.state),
                           RunSubState(run.sub_state) if run.sub_state else None, run.message, run.cancel_requested)

    def transition(self, run_id: int, state: RunState, sub_state: RunSubState | None = None,
                   message: str | None = None, error_code: str | None = None) -> RunView:
        """Move a run; terminal states also complete its run and cancel operations."""
        with self.db.session() as s:
            run = s.get(Run, run_id, with_for_update=True)
            if run is None:
                raise NotFound(f"run {run_id} not found")
            cur = RunState(run.state)
            if cur is RunState.CANCELING and state is RunState.RUNNING:
                state = RunState.CANCELING  # a canceling run still reports its sub-state as it winds down
            check_transition(cur, RunSubState(run.sub_state) if run.sub_state else None, state, sub_state)
            run.state = state.value
            if sub_state is not None:
                run.sub_state = sub_state.value
            if message is not None:
                run.message = redact(message)  # an error's text may quote a URL with its SAS, a key
            now = utcnow()
            if state.terminal:
                run.end_time = now
                self._complete_ops(s, run, state, error_code)
            t = s.get(Template, run.template_id)
            deleting: list[str] = []
            if t is not None:
                t.last_run_status = _status(run)
                if state.terminal and t.provisioning_state == "Deleting":
                    deleting = list(s.scalars(select(Operation.id).where(
                        Operation.kind == "delete", Operation.status == "InProgress",
                        Operation.resource_id == TemplatePath(t.subscription_id, t.resource_group, t.name).resource_id())))
            view = RunView(run.id, run.template_id, RunState(run.state),
                           RunSubState(run.sub_state) if run.sub_state else None, run.message, run.cancel_requested)
        for op_id in deleting:  # a delete that waited for this run to stop can finish now
            self.templates.finish_operation(op_id)
        return view

    @staticmethod
    def _complete_ops(s, run: Run, state: RunState, error_code: str | None) -> None:  # noqa: ANN001
        now = utcnow()
        for op in s.scalars(select(Operation).where(Operation.run_id == run.id, Operation.status == "InProgress")):
            op.end_time = now
            if op.kind == "cancel":
                op.status = "Succeeded"
                continue
            if state is RunState.SUCCEEDED:
                op.status = "Succeeded"
            elif state is RunState.CANCELED:
                op.status = "Canceled"
                op.error = {"code": "Canceled", "message": run.message or "The run was canceled."}
            else:
                op.status = "Failed"
                op.error = {"code": error_code or state.value, "message": run.message or f"The run ended {state.value}."}

    # ---------------------------------------------------------------- worker side
    def claim(self, run_id: int, owner: str, lease_seconds: int) -> bool:
        """Take a run for execution: only an active run whose lease is free or expired can be claimed."""
        now = utcnow()
        with self.db.session() as s:
            run = s.get(Run, run_id, with_for_update=True)
            if run is None or RunState(run.state).terminal:
                return False
            if run.lease_owner and run.lease_owner != owner and run.lease_expires and run.lease_expires > now:
                return False
            run.lease_owner, run.lease_expires = owner, now + timedelta(seconds=lease_seconds)
            run.attempts += 1
            return True

    def renew(self, run_id: int, owner: str, lease_seconds: int) -> None:
        with self.db.session() as s:
            run = s.get(Run, run_id, with_for_update=True)
            if run is not None and run.lease_owner == owner:
                run.lease_expires = utcnow() + timedelta(seconds=lease_seconds)

    def is_claimed(self, run_id: int) -> bool:
        with self.db.read() as s:
            run = s.get(Run, run_id)
            return run is not None and run.lease_owner is not None

    def lease(self, run_id: int):  # noqa: ANN201
        with self.db.read() as s:
            run = s.get(Run, run_id)
            return None if run is None else (run.lease_owner, run.lease_expires)

    def cancel_requested(self, run_id: int) -> bool:
        with self.db.read() as s:
            run = s.get(Run, run_id)
            return run is None or run.cancel_requested

    def load(self, run_id: int) -> dict[str, Any]:
        """What a worker needs of the run's template."""
        with self.db.read() as s:
            run = s.get(Run, run_id)
            t = s.get(Template, run.template_id) if run else None
            if t is None:
                raise NotFound(f"run {run_id} or its template not found")
            return {"properties": t.properties, "name": t.name, "location": t.location, "identity": t.identity,
                    "subscription": t.subscription_id, "group": t.resource_group, "writer": t.writer_object_id,
                    "writer_name": t.modified_by,
                    # Checked before a run: a group the service made, or one the user gave (templates from before
                    # staging groups existed name a generated group that was never created).
                    "staging_group": t.staging_resource_group if (
                        t.staging_group_owned or (t.properties or {}).get("stagingResourceGroup")) else None}

    def set_log_path(self, run_id: int, path: str) -> None:
        with self.db.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.log_path = path

    def record_exact_version(self, run_id: int, exact: str | None) -> None:
        """``latest`` resolved: the template reports the exact version (a read-only field)."""
        if not exact:
            return
        with self.db.session() as s:
            run = s.get(Run, run_id)
            t = s.get(Template, run.template_id) if run else None
            if t is not None and isinstance(t.properties.get("source"), dict):
                props = dict(t.properties)
                props["source"] = {**props["source"], "exactVersion": exact}
                t.properties = props

    def runs_of(self, path: TemplatePath) -> list[Run]:
        with self.db.read() as s:
            t = self.templates._require(s, path)
            return list(s.scalars(select(Run).where(Run.template_id == t.id).order_by(Run.id.desc())))

    def run_of(self, path: TemplatePath, run_ref: str) -> Run:
        with self.db.read() as s:
            t = self.templates._require(s, path)
            q = select(Run).where(Run.template_id == t.id)
            if run_ref.lower() == "latest":
                run = s.scalar(q.order_by(Run.id.desc()).limit(1))
            else:
                # A run id is a positive 64-bit integer: anything else (or longer) names no run, never a 500.
                ok = run_ref.isdigit() and len(run_ref) <= 18
                run = s.scalar(q.where(Run.id == int(run_ref))) if ok else None
            if run is None:
                raise NotFound(f"The run '{run_ref}' of image template '{path.name}' was not found.", target=run_ref)
            return run

    def active_runs(self) -> list[int]:
        with self.db.read() as s:
            return list(s.scalars(select(Run.id).where(
                Run.state.in_([RunState.RUNNING.value, RunState.CANCELING.value]))))

    def record_output(self, run_id: int, name: str, *, artifact_id: str | None = None,
                      artifact_uri: str | None = None, state: str = "Succeeded") -> None:
        with self.db.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFound(f"run {run_id} not found")
            row = s.scalar(select(RunOutput).where(RunOutput.template_id == run.template_id,
                                                   RunOutput.name_key == name.lower()))
            if row is None:
                row = RunOutput(template_id=run.template_id, run_id=run_id, name=name, name_key=name.lower(),
                                provisioning_state=state)
                s.add(row)
            row.run_id, row.artifact_id, row.artifact_uri, row.provisioning_state = run_id, artifact_id, artifact_uri, state

    def outputs(self, path: TemplatePath) -> list[RunOutput]:
        with self.db.read() as s:
            t = self.templates._require(s, path)
            return list(s.scalars(select(RunOutput).where(RunOutput.template_id == t.id).order_by(RunOutput.id)))

    def output(self, path: TemplatePath, name: str) -> RunOutput:
        with self.db.read() as s:
            t = self.templates._require(s, path)
            row = s.scalar(select(RunOutput).where(RunOutput.template_id == t.id, RunOutput.name_key == name.lower()))
            if row is None:
                raise NotFound(
                    f"The run output '{name}' of image template '{path.name}' was not found.", target=name
                )
            return row
