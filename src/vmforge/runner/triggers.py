"""SourceImage triggers: run a template when its source gets a new version.

A trigger watches a template whose source names ``latest`` (a PlatformImage with version ``latest``, or a
SharedImageVersion whose id ends in ``/versions/latest``). The first check records the version ``latest``
resolves to; when a later check resolves to another one, the template is run (once: a run already in progress
postpones it to the next check) and the new version becomes the baseline. The trigger's ``status`` says what
it saw.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import select

from vmforge.errors import ArmError, Conflict
from vmforge.runner.schedule import ScheduleWatcher
from vmforge.service.ids import TemplatePath, utcnow
from vmforge.store.models import Template, Trigger

log = logging.getLogger("vmforge.triggers")


def watches_latest(source: dict[str, Any]) -> bool:
    if source.get("type") == "PlatformImage":
        return str(source.get("version", "")).lower() == "latest"
    if source.get("type") == "SharedImageVersion":
        return str(source.get("imageVersionId", "")).rstrip("/").lower().endswith("/latest")
    return False


class TriggerWatcher:
    def __init__(self, services: Any, interval: float) -> None:
        self.services = services
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.schedules = ScheduleWatcher(services, interval)  # kind Schedule, on its own thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="vmforge-triggers", daemon=True)
        self._thread.start()
        self.schedules.start()

    def stop(self) -> None:
        self._stop.set()
        self.schedules.stop()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 — the watcher outlives a bad check
                log.exception("trigger check failed")

    def _set(self, trigger_id: int, code: str, message: str, version: str | None = None) -> None:
        with self.services.db.session() as s:
            row = s.get(Trigger, trigger_id)
            if row is not None:
                row.status_code, row.status_message, row.status_time = code, message, utcnow()
                if version is not None:
                    row.source_version = version

    def check_once(self) -> list[str]:
        """One pass over every SourceImage trigger; returns the names of the templates it started."""
        with self.services.db.read() as s:
            rows = list(s.execute(select(Trigger.id, Trigger.source_version, Template.subscription_id,
                                         Template.resource_group, Template.name, Template.properties)
                                  .join(Template, Trigger.template_id == Template.id)
                                  .where(Trigger.kind == "SourceImage", Trigger.provisioning_state == "Succeeded",
                                         Template.provisioning_state == "Succeeded")))
        started = []
        for trig_id, seen, sub, group, name, props in rows:
            source = props.get("source") or {}
            if not watches_latest(source):
                self._set(trig_id, "Healthy", "The source names a fixed version: this trigger fires only for "
                          "sources whose version is 'latest'.")
                continue
            try:
                resolved = self.services.artifacts.resolve_source(source)
            except ArmError as e:
                self._set(trig_id, "Unhealthy", f"The source cannot be resolved: {e.message}")
                continue
            current = resolved.exact_version or resolved.path.stem
            if seen is None:
                self._set(trig_id, "Healthy", f"Watching the source; its latest version is {current}.", current)
                continue
            if current == seen:
                continue
            if source.get("exactVersion") == current:  # a run already built from it
                self._set(trig_id, "Healthy", f"Watching the source; its latest version {current} is built.", current)
                continue
            try:
                op = self.services.runs.start(TemplatePath(sub, group, name))
            except Conflict:
                continue  # a run is in progress: try again at the next check
            self._set(trig_id, "Healthy", f"The source has a new version {current}: a run was started "
                      f"(operation {op.id}).", current)
            started.append(name)
        return started
