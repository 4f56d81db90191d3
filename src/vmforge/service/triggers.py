"""Triggers of an image template (kind SourceImage, and vmforge's Schedule: ``vmforge.runner.schedule``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from vmforge import wire
from vmforge.errors import NotFound
from vmforge import schedule
from vmforge.service.ids import TemplatePath, check_name, utcnow
from vmforge.service.templates import TemplateService
from vmforge.store.models import Operation, Trigger


def trigger_not_found(path: TemplatePath, name: str) -> NotFound:
    return NotFound(f"The trigger '{name}' of image template '{path.name}' was not found.", target=name)


class TriggerService:
    def __init__(self, templates: TemplateService) -> None:
        self.templates = templates
        self.db = templates.db

    def trigger_id(self, path: TemplatePath, name: str) -> str:
        return path.resource_id() + f"/triggers/{name}"

    def put(self, path: TemplatePath, name: str, body: Any, api_version: str) -> tuple[Trigger, bool, Operation]:
        check_name(name, "trigger")
        c = wire.validate_trigger(body, api_version)
        kind = c["properties"]["kind"]
        with self.db.session() as s:
            t = self.templates._require(s, path, lock=True)
            row = s.scalar(select(Trigger).where(Trigger.template_id == t.id, Trigger.name_key == name.lower()))
            created = row is None
            if row is None:
                row = Trigger(template_id=t.id, name=name, name_key=name.lower(), kind=kind,
                              provisioning_state="Creating", status_code="Healthy", status_message="",
                              status_time=utcnow())
                s.add(row)
                schedule.configure(row, c["properties"], utcnow())
                s.flush()
                op = self.templates._operation(s, t, "trigger-put", resource_id=self.trigger_id(path, name))
            else:
                row.kind = kind
                schedule.configure(row, c["properties"], utcnow())
                op = self.templates._operation(s, t, "trigger-put", status="Succeeded",
                                               resource_id=self.trigger_id(path, row.name))
        if kind == "Schedule" and not created:  # committed: the watcher recomputes its sleep (new ones: finish)
            schedule.changed.set()
        return row, created, op

    def finish(self, op_id: str) -> None:
        scheduled = False
        with self.db.session() as s:
            op = s.get(Operation, op_id, with_for_update=True)
            if op is None or op.status != "InProgress" or op.kind not in ("trigger-put", "trigger-delete"):
                return
            parts = op.resource_id.split("/")
            path = TemplatePath(parts[2], parts[4], parts[8])
            t = self.templates._find(s, path)
            row = None
            if t is not None:
                row = s.scalar(select(Trigger).where(Trigger.template_id == t.id, Trigger.name_key == parts[10].lower()))
            if row is not None:
                if op.kind == "trigger-put":
                    row.provisioning_state = "Succeeded"
                    row.status_time = utcnow()
                    scheduled = row.kind == "Schedule"
                else:
                    s.delete(row)
            op.status, op.end_time = "Succeeded", utcnow()
        if scheduled:  # committed: the schedule watcher counts the trigger from now on
            schedule.changed.set()

    def get(self, path: TemplatePath, name: str) -> Trigger:
        with self.db.read() as s:
            t = self.templates._require(s, path)
            row = s.scalar(select(Trigger).where(Trigger.template_id == t.id, Trigger.name_key == name.lower()))
            if row is None or row.provisioning_state == "Deleting":
                raise trigger_not_found(path, name)
            return row

    def list(self, path: TemplatePath) -> list[Trigger]:
        with self.db.read() as s:
            t = self.templates._require(s, path)
            return list(s.scalars(select(Trigger).where(Trigger.template_id == t.id,
                                                        Trigger.provisioning_state != "Deleting").order_by(Trigger.id)))

    def delete(self, path: TemplatePath, name: str) -> Operation | None:
        with self.db.session() as s:
            t = self.templates._find(s, path)
            if t is None:
                return None
            row = s.scalar(select(Trigger).where(Trigger.template_id == t.id, Trigger.name_key == name.lower()))
            if row is None:
                return None
            row.provisioning_state = "Deleting"
            return self.templates._operation(s, t, "trigger-delete", resource_id=self.trigger_id(path, row.name))
