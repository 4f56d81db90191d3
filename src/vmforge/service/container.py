"""Wires the services together for one server process."""

from __future__ import annotations

from vmforge.service import group_delete, staging
from vmforge.service import views  # noqa: F401  (registers the render-on-write hook)
from vmforge.service.runs import RunService
from vmforge.service.templates import Engine, TemplateService
from vmforge.service.triggers import TriggerService
from vmforge.settings import Settings
from vmforge.store.db import Database


class Services:
    def __init__(self, settings: Settings, db: Database, engine: Engine) -> None:
        self.settings = settings
        self.db = db
        self.engine = engine
        self.templates = TemplateService(db, settings, engine)
        self.runs = RunService(self.templates)
        self.triggers = TriggerService(self.templates)
        self.artifacts = None  # vmforge.artifacts.Artifacts, set by the server (build_services)

    def finish(self, op_id: str) -> None:
        """Complete an asynchronous (non-run) operation, whatever its kind."""
        self.templates.finish_operation(op_id)
        self.triggers.finish(op_id)
        group_delete.finish(self, op_id)

    def recover(self) -> int:
        """At start: finish what a crash interrupted, and let the engine recover its runs."""
        pending = self.templates.pending_operations() + group_delete.pending(self)
        for op_id in pending:
            self.finish(op_id)
        recover = getattr(self.engine, "recover", None)
        if recover is not None:
            recover()
        staging.reap(self.db)  # what runs that ended in a crash had staged
        return len(pending)
