"""The tables. Every row that a client can see is keyed by lower-cased ARM path parts (ARM matching is
case-insensitive) while the names are kept as they were created."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from datetime import timezone

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ANN001, ANN201
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):  # noqa: ANN001, ANN201
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


# The rendered ARM body of a template, one column per api-version (see vmforge.service.views).
VIEW_COLUMNS = {
    "2022-07-01": "view_2022_07_01",
    "2023-07-01": "view_2023_07_01",
    "2024-02-01": "view_2024_02_01",
    "2025-10-01": "view_2025_10_01",
}


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Template(Base):
    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("subscription_key", "group_key", "name_key", name="uq_template_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_key: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(90))
    name_key: Mapped[str] = mapped_column(String(64))
    subscription_id: Mapped[str] = mapped_column(String(64))
    resource_group: Mapped[str] = mapped_column(String(90))
    name: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(64))
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    identity: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    provisioning_state: Mapped[str] = mapped_column(String(16))
    provisioning_error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    staging_resource_group: Mapped[str] = mapped_column(String(300))
    # Whether the service created the staging group (then it is deleted with the template; a group the user
    # gave that existed keeps living, only what the service put in it goes).
    staging_group_owned: Mapped[bool] = mapped_column(default=False)
    # autoRun: a run is due once the create or update being provisioned succeeds (consumed in that transaction).
    auto_run_pending: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    modified_by: Mapped[str] = mapped_column(String(200))
    # The object id of the principal who last wrote the template: a template without an identity builds with
    # that principal's rights (vmforge.runner.access).
    writer_object_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Snapshot of the newest run's status (ImageTemplateLastRunStatus), written with every run transition.
    last_run_status: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Optimistic-concurrency counter, bumped by every write to the row.
    version: Mapped[int] = mapped_column(Integer, default=1)
    view_2022_07_01: Mapped[str] = mapped_column(Text, default="")
    view_2023_07_01: Mapped[str] = mapped_column(Text, default="")
    view_2024_02_01: Mapped[str] = mapped_column(Text, default="")
    view_2025_10_01: Mapped[str] = mapped_column(Text, default="")

    triggers: Mapped[list[Trigger]] = relationship(
        back_populates="template", cascade="all, delete-orphan", passive_deletes=True
    )


Index("ix_templates_sub_name", Template.subscription_key, Template.name_key, Template.id)


class Operation(Base):
    """An asynchronous operation (ARM's Azure-AsyncOperation resource)."""

    __tablename__ = "operations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subscription_key: Mapped[str] = mapped_column(String(64), index=True)
    location: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(600))
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Run(Base):
    """One run of a template: a persisted state machine (see ``vmforge.service.runs``)."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"), index=True)
    operation_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(24))
    sub_state: Mapped[str | None] = mapped_column(String(24), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    log_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # A Succeeded run's inputs (vmforge.runner.fingerprint): the source version it resolved and the sha256 of
    # every download; Schedule triggers with condition onChange compare against it.
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class RunOutput(Base):
    __tablename__ = "run_outputs"
    __table_args__ = (UniqueConstraint("template_id", "name_key", name="uq_run_output"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64))
    artifact_id: Mapped[str | None] = mapped_column(String(600), nullable=True)
    artifact_uri: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    provisioning_state: Mapped[str] = mapped_column(String(16))


class Trigger(Base):
    __tablename__ = "triggers"
    __table_args__ = (UniqueConstraint("template_id", "name_key", name="uq_trigger"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    provisioning_state: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[str] = mapped_column(String(32))
    status_message: Mapped[str] = mapped_column(Text, default="")
    status_time: Mapped[datetime] = mapped_column(UTCDateTime())
    # SourceImage triggers: the source version the template was last built from (or first seen at).
    source_version: Mapped[str | None] = mapped_column(String(600), nullable=True)
    # Schedule triggers (vmforge.runner.schedule): cron expression, IANA time zone, always|onChange, the next
    # fire time (UTC) and the last time it fired.
    schedule: Mapped[str | None] = mapped_column(String(200), nullable=True)
    time_zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    condition: Mapped[str | None] = mapped_column(String(16), nullable=True)
    next_run_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_fired_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    template: Mapped[Template] = relationship(back_populates="triggers")
