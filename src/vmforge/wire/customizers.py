"""Customizers: the entries of ``properties.customize[]``, discriminated by ``type``."""

from __future__ import annotations

import re
from typing import Any, Literal

from vmforge.wire.base import Ctx, NonNegativeInt32, kind
from vmforge.wire.errors import PATTERN, Path
from vmforge.wire.steps import FileStep, PowerShellStep, ScriptStep, Step

# restartTimeout is a duration "of magnitude and unit" (Packer's windows-restart): "5m", "2h", "1h30m", "90s".
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


@kind("customizer")
class ImageTemplateShellCustomizer(ScriptStep):
    """Runs a shell script (Linux)."""

    type: Literal["Shell"]


@kind("customizer")
class ImageTemplatePowerShellCustomizer(PowerShellStep):
    """Runs PowerShell (Windows)."""

    type: Literal["PowerShell"]


@kind("customizer")
class ImageTemplateFileCustomizer(FileStep):
    """Uploads a file to the build VM."""

    type: Literal["File"]


@kind("customizer")
class ImageTemplateRestartCustomizer(Step):
    """Reboots a Windows VM and waits for it to come back."""

    type: Literal["WindowsRestart"]
    restartCommand: str | None = None
    restartCheckCommand: str | None = None
    restartTimeout: str | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        timeout = data.get("restartTimeout")
        if isinstance(timeout, str) and timeout and not DURATION.match(timeout):
            ctx.add(PATTERN, "The restartTimeout must be a magnitude and unit, for example '5m' or '2h'.",
                    (*path, "restartTimeout"))


@kind("customizer")
class ImageTemplateWindowsUpdateCustomizer(Step):
    """Installs Windows updates."""

    type: Literal["WindowsUpdate"]
    searchCriteria: str | None = None
    filters: list[str] | None = None
    updateLimit: NonNegativeInt32 | None = None
