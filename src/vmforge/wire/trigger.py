"""Triggers of an image template (``.../imageTemplates/{name}/triggers/{trigger}``), discriminated by ``kind``."""

from __future__ import annotations

from typing import Literal

from vmforge.wire.base import WireModel, kind, union


@kind("trigger", "kind")
class SourceImageTriggerProperties(WireModel):
    """Builds the template again when its source image gets a new version."""

    read_only = frozenset({"status", "provisioningState"})

    kind: Literal["SourceImage"]


TriggerProperties = union("trigger", "kind")


class Trigger(WireModel):
    read_only = frozenset({"id", "name", "type", "systemData"})

    properties: TriggerProperties
