"""Image templates: create, read, list, update, delete — and their asynchronous operations.

Every write is one transaction. Work that ARM reports asynchronously (provisioning a new template, applying a
PATCH, deleting) is recorded as an ``Operation`` in the same transaction as the change that starts it, then
finished by ``finish_pending`` — right after the response, or at the next start after a crash.
"""

from __future__ import annotations

from collections.abc import Callable

import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vmforge import wire
from vmforge.auth import Principal
from vmforge.errors import BadRequest, Conflict, NotFound
from vmforge.service import groups, staging
from vmforge.service.ids import (TemplatePath, check_group, check_name, decode_token, encode_token, location_key,
                                utcnow)
from vmforge.service.runstate import RunState
from vmforge.settings import Settings
from vmforge.store.db import Database
from vmforge.store.models import VIEW_COLUMNS, Operation, Run, RunOutput, Template, Trigger

UPDATE_REFUSED = "Update/Upgrade of image templates is currently not supported"


class Engine(Protocol):
    """What runs builds. ``submit`` is called after the run's row is committed."""

    def submit(self, run_id: int) -> None: ...

    def cancel(self, run_id: int) -> None: ...

    def shutdown(self) -> list[int]: ...  # the server is stopping: stop this process's builds


def not_found(path: TemplatePath) -> NotFound:
    return NotFound(
        f"The Resource 'Microsoft.VirtualMachineImages/imageTemplates/{path.name}' under resource group "
        f"'{path.group}' was not found.",
        target=path.name,
    )


@dataclass
class Page:
    items: list[str]  # rendered template bodies (JSON text) of the requested api-version
    next_token: str | None


def _staging_group(path: TemplatePath, props: dict[str, Any]) -> str:
    given = props.get("stagingResourceGroup")
    if given:
        return given
    return f"/subscriptions/{path.subscription}/resourceGroups/IT_{path.group}_{path.name}_{uuid.uuid4()}"


def _auto_run(props: dict[str, Any]) -> bool:
    return ((props.get("autoRun") or {}).get("state") or "").lower() == "enabled"


def _identity_principal(identity: dict[str, Any] | None) -> str | None:
    """The principal id of the template's user-assigned identity (``check_linked`` recorded it)."""
    for value in ((identity or {}).get("userAssignedIdentities") or {}).values():
        if isinstance(value, dict) and value.get("principalId"):
            return value["principalId"]
    return None


def _spec(location: str, identity: Any, props: dict[str, Any]) -> str:
    """What must be equal for a PUT to count as 'the same template' (tags may change; the read-only
    ``source.exactVersion`` that a run records is not part of what the client sent)."""
    if isinstance(props.get("source"), dict) and "exactVersion" in props["source"]:
        props = {**props, "source": {k: v for k, v in props["source"].items() if k != "exactVersion"}}
    return json.dumps([location_key(location), identity, props], sort_keys=True)


class TemplateService:
    def __init__(self, db: Database, settings: Settings, engine: Engine) -> None:
        self.db = db
        self.settings = settings
        self.engine = engine
        self._view_queries: dict[str, Any] = {}

    # ----------------------------------------------------------------- helpers
    def _find(self, s: Session, path: TemplatePath, *, lock: bool = False) -> Template | None:
        sub, group, name = path.keys
        q = select(Template).where(
            Template.subscription_key == sub, Template.group_key == group, Template.name_key == name
        )
        if lock:
            q = q.with_for_update()
        return s.scalar(q)

    def _require(self, s: Session, path: TemplatePath, *, lock: bool = False) -> Template:
        t = self._find(s, path, lock=lock)
        if t is None or t.provisioning_state == "Deleting":
            raise not_found(path)
        return t

    def _operation(self, s: Session, t: Template, kind: str, status: str = "InProgress", run_id: int | None = None,
                   resource_id: str | None = None) -> Operation:
        now = utcnow()
        op = Operation(
            id=str(uuid.uuid4()).upper(),
            subscription_key=t.subscription_key,
            location=location_key(t.location),
            kind=kind,
            resource_id=resource_id or TemplatePath(t.subscription_id, t.resource_group, t.name).resource_id(),
            status=status,
            start_time=now,
            end_time=None if status == "InProgress" else now,
            run_id=run_id,
        )
        s.add(op)
        return op

    @staticmethod
    def _active_run(s: Session, t: Template) -> Run | None:
        return s.scalar(
            select(Run).where(Run.template_id == t.id, Run.state.in_([RunState.RUNNING.value, RunState.CANCELING.value]))
        )

    # ----------------------------------------------------------------- PUT
    def put(self, path: TemplatePath, body: Any, api_version: str, principal: Principal,
            linked: Callable[[dict[str, Any]], None] | None = None) -> tuple[Template, bool, Operation]:
        """Create or replace a template. ``linked`` is ARM's linked-access check of the identities it names
        (``vmforge.identity.managed.check_linked``, bound to the caller by the route); it runs on the validated
        body, before anything is stored."""
        check_group(path.group)
        groups.require(self.db, path.subscription, path.group)  # ARM checks the group before the body
        check_name(path.name)
        canonical = wire.validate_template(body, api_version)
        if linked is not None:
            linked(canonical)
        for attempt in range(2):
            try:
                return self._put_once(path, canonical, principal)
            except IntegrityError:
                # Another request created the same name between our read and our insert: it exists now,
                # so this PUT is judged against it (idempotent or a conflict), never a second row.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _put_once(self, path: TemplatePath, c: dict[str, Any], principal: Principal) -> tuple[Template, bool, Operation]:
        now = utcnow()
        with self.db.session() as s:
            t = self._find(s, path, lock=True)
            if t is not None and t.provisioning_state == "Deleting":
                raise Conflict(f"The image template '{path.name}' is being deleted.", code="Conflict")
            if t is not None:
                same = _spec(t.location, t.identity, t.properties) == _spec(c["location"], c.get("identity"), c["properties"])
                if same:
                    if c.get("tags", {}) != (t.tags or {}):
                        t.tags = c.get("tags", {})
                        t.modified_by, t.modified_at = principal.name, now
                        t.version += 1
                    op = self._operation(s, t, "put", status="Succeeded")
                    return t, False, op
                if not self.settings.allow_template_updates:
                    raise Conflict(UPDATE_REFUSED, code="Conflict", target=path.name)
                if self._active_run(s, t) is not None:
                    raise Conflict(
                        f"The image template '{path.name}' has a run in progress; it cannot be updated until the run ends.",
                        code="Conflict",
                    )
                given = (c["properties"].get("stagingResourceGroup") or "").rstrip("/").lower()
                if given != (t.properties.get("stagingResourceGroup") or "").rstrip("/").lower():
                    raise BadRequest("The stagingResourceGroup of an image template cannot be changed; delete the "
                                     "template and create it again.", code="InvalidParameter",
                                     target="properties.stagingResourceGroup")
                t.location, t.identity, t.properties = c["location"], c.get("identity"), c["properties"]
                t.tags = c.get("tags", {})
                t.provisioning_state, t.provisioning_error = "Updating", None
                t.modified_by, t.modified_at = principal.name, now
                t.writer_object_id = principal.object_id
                t.version += 1
                t.auto_run_pending = _auto_run(c["properties"])
                staging.retag(s, t)
                op = self._operation(s, t, "put")
                return t, False, op
            groups.require_in(s, path.subscription, path.group)
            staging_group = _staging_group(path, c["properties"])
            owned = staging.prepare(s, path, c["location"], c["properties"], staging_group,
                                    _identity_principal(c.get("identity")))
            sub, group, name = path.keys
            t = Template(
                subscription_key=sub, group_key=group, name_key=name,
                subscription_id=path.subscription, resource_group=path.group, name=path.name,
                location=c["location"], tags=c.get("tags", {}), identity=c.get("identity"),
                properties=c["properties"], provisioning_state="Creating", provisioning_error=None,
                staging_resource_group=staging_group, staging_group_owned=owned,
                auto_run_pending=_auto_run(c["properties"]),
                created_by=principal.name, created_at=now, modified_by=principal.name, modified_at=now,
                writer_object_id=principal.object_id, version=1,
            )
            s.add(t)
            s.flush()
            op = self._operation(s, t, "put")
            return t, True, op

    # ----------------------------------------------------------------- GET / LIST
    def get_view(self, path: TemplatePath, api_version: str) -> str:
        """The stored ARM body of a template (the hot read path: one column, no ORM object)."""
        sub, group, name = path.keys
        q = self._view_queries.get(api_version)
        if q is None:  # one statement per api-version, built once (SQLAlchemy then reuses its compiled form)
            q = self._view_queries[api_version] = select(getattr(Template, VIEW_COLUMNS[api_version])).where(
                Template.subscription_key == bindparam("sub"), Template.group_key == bindparam("grp"),
                Template.name_key == bindparam("name"), Template.provisioning_state != "Deleting",
            )
        with self.db.engine.connect() as conn:
            body = conn.execute(q, {"sub": sub, "grp": group, "name": name}).scalar()
        if body is None:
            raise not_found(path)
        return body

    def get(self, path: TemplatePath) -> Template:
        with self.db.read() as s:
            return self._require(s, path)

    def list(self, subscription: str, group: str | None, skip_token: str | None, api_version: str,
             limit: int | None = None) -> Page:
        after = decode_token(skip_token)
        limit = limit or self.settings.page_size
        q = select(Template.id, getattr(Template, VIEW_COLUMNS[api_version])).where(
            Template.subscription_key == subscription.lower(), Template.id > after,
            Template.provisioning_state != "Deleting",
        )
        if group is not None:
            q = q.where(Template.group_key == group.lower())
        q = q.order_by(Template.id).limit(limit + 1)
        with self.db.read() as s:
            rows = list(s.execute(q))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page([r[1] for r in rows], encode_token(rows[-1][0]) if more and rows else None)

    # ----------------------------------------------------------------- PATCH
    def patch(self, path: TemplatePath, body: Any, api_version: str, principal: Principal,
              linked: Callable[[dict[str, Any]], None] | None = None) -> tuple[Template, Operation]:
        upd = wire.validate_template_update(body, api_version)
        if linked is not None and ("identity" in upd or "vmProfile" in (upd.get("properties") or {})):
            linked(upd)
        with self.db.session() as s:
            t = self._require(s, path, lock=True)
            props_upd = upd.get("properties") or {}
            if props_upd and self._active_run(s, t) is not None:
                raise Conflict(
                    f"The image template '{path.name}' has a run in progress; its properties cannot be updated now.",
                    code="Conflict",
                )
            if props_upd:
                merged = {**t.properties, **props_upd}
                # Re-check the whole template as it would be after the change (cross-field rules included).
                wire.validate_template(
                    {"location": t.location, "identity": upd.get("identity", t.identity) or {"type": "None"},
                     "properties": merged},
                    wire.API_VERSIONS[-1],
                )
                t.properties = merged
                t.auto_run_pending = _auto_run(merged)
            if "tags" in upd:
                t.tags = upd["tags"] or {}
            if "identity" in upd:
                t.identity = upd["identity"]
            if props_upd or "identity" in upd:
                t.writer_object_id = principal.object_id
            t.modified_by, t.modified_at = principal.name, utcnow()
            t.version += 1
            t.provisioning_state = "Updating"
            op = self._operation(s, t, "patch")
            return t, op

    # ----------------------------------------------------------------- DELETE
    def delete(self, path: TemplatePath) -> Operation | None:
        with self.db.session() as s:
            t = self._find(s, path, lock=True)
            if t is None:
                return None
            if t.provisioning_state == "Deleting":
                op = s.scalar(
                    select(Operation).where(Operation.resource_id == TemplatePath(
                        t.subscription_id, t.resource_group, t.name).resource_id(), Operation.kind == "delete",
                        Operation.status == "InProgress"))
                if op is not None:
                    return op
            t.provisioning_state = "Deleting"
            run = self._active_run(s, t)
            if run is not None:
                run.cancel_requested = True
            op = self._operation(s, t, "delete")
            run_id = run.id if run is not None else None
        if run_id is not None:
            self.engine.cancel(run_id)
        return op

    # ----------------------------------------------------------------- async completion
    def finish_operation(self, op_id: str) -> None:
        """Complete a provisioning/patch/delete operation (idempotent; safe to repeat after a crash)."""
        auto_run: int | None = None
        with self.db.session() as s:
            op = s.get(Operation, op_id, with_for_update=True)
            if op is None or op.status != "InProgress" or op.kind not in ("put", "patch", "delete"):
                return
            now = utcnow()
            if op.kind in ("put", "patch"):
                t = self._by_resource_id(s, op.resource_id)
                if t is not None and t.provisioning_state in ("Creating", "Updating"):
                    t.provisioning_state = "Succeeded"
                    if t.auto_run_pending:  # autoRun: the run starts in the transaction that ends provisioning
                        t.auto_run_pending = False
                        if self._active_run(s, t) is None:
                            auto_run = self.new_run(s, t)[0].id
            elif op.kind == "delete":
                t = self._by_resource_id(s, op.resource_id)
                if t is not None:
                    if self._active_run(s, t) is not None:
                        return  # the run's cancellation will finish this delete
                    self.purge(s, t)
            op.status, op.end_time = "Succeeded", now
        if auto_run is not None:
            self.engine.submit(auto_run)

    def new_run(self, s: Session, t: Template) -> tuple[Run, Operation]:
        """A queued run of ``t`` and its ``run`` operation, in the caller's transaction (the caller checked that
        none is in progress, and submits the run to the engine once this commits)."""
        from vmforge.service.runs import _status
        from vmforge.service.runstate import RunSubState

        op = self._operation(s, t, "run")
        run = Run(template_id=t.id, operation_id=op.id, state=RunState.RUNNING.value,
                  sub_state=RunSubState.QUEUED.value, message="", start_time=utcnow(), cancel_requested=False,
                  attempts=0)
        s.add(run)
        s.flush()
        op.run_id = run.id
        t.last_run_status = _status(run)
        return run, op

    def purge(self, s: Session, t: Template) -> None:
        """Remove a template and the rows hanging off it (run outputs, triggers, runs) in the caller's
        transaction; the caller has made sure no run of it is in progress."""
        s.execute(delete(RunOutput).where(RunOutput.template_id == t.id))
        s.execute(delete(Trigger).where(Trigger.template_id == t.id))
        s.execute(delete(Run).where(Run.template_id == t.id))
        staging.release(s, t)
        s.delete(t)

    def _by_resource_id(self, s: Session, resource_id: str) -> Template | None:
        parts = resource_id.split("/")
        # /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.VirtualMachineImages/imageTemplates/{name}
        return self._find(s, TemplatePath(parts[2], parts[4], parts[8]))

    def pending_operations(self) -> list[str]:
        with self.db.read() as s:
            return list(s.scalars(select(Operation.id).where(
                Operation.status == "InProgress", Operation.kind.in_(["put", "patch", "delete", "trigger-put",
                                                                      "trigger-delete"]))))

    def get_operation(self, subscription: str, location: str, op_id: str) -> Operation:
        with self.db.read() as s:
            op = s.get(Operation, op_id.upper())
            if op is None or op.subscription_key != subscription.lower() or op.location != location_key(location):
                raise NotFound(f"The operation '{op_id}' was not found.", code="OperationNotFound", target=op_id)
            return op
