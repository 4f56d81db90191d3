"""Triggers of an image template (``.../imageTemplates/{name}/triggers/{trigger}``), discriminated by ``kind``."""

from __future__ import annotations

from typing import Any, Literal

from vmforge.wire.base import Ctx, NonEmptyStr, WireModel, kind, union
from vmforge.wire.errors import INVALID, Path


@kind("trigger", "kind")
class SourceImageTriggerProperties(WireModel):
    """Builds the template again when its source image gets a new version."""

    read_only = frozenset({"status", "provisioningState"})

    kind: Literal["SourceImage"]


@kind("trigger", "kind")
class ScheduleTriggerProperties(WireModel):
    """A vmforge extension: builds the template on a cron schedule (``vmforge.schedule``), always or only when its
    inputs changed since the last successful run (``vmforge.runner.fingerprint``)."""

    read_only = frozenset({"status", "provisioningState", "nextRunTime", "lastFiredTime"})
    echo_defaults = ("timeZone", "condition")

    kind: Literal["Schedule"]
    schedule: NonEmptyStr
    timeZone: NonEmptyStr = "UTC"
    condition: Literal["always", "onChange"] = "onChange"

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        from vmforge.schedule import schedule_error, zone_error

        super().rules(data, path, ctx)
        expr, tz = data.get("schedule"), data.get("timeZone")
        if isinstance(expr, str) and expr and (why := schedule_error(expr)):
            ctx.add(INVALID, why, (*path, "schedule"))
        if isinstance(tz, str) and tz and (why := zone_error(tz)):
            ctx.add(INVALID, why, (*path, "timeZone"))


TriggerProperties = union("trigger", "kind")


class Trigger(WireModel):
    read_only = frozenset({"id", "name", "type", "systemData"})

    properties: TriggerProperties
