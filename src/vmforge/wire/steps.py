"""Fields and rules shared by in-VM steps: customizers (``customize[]``) and validators
(``validate.inVMValidations[]``) have the same Shell, PowerShell and File shapes.
"""

from __future__ import annotations

import re
from typing import Any

from vmforge.wire.base import Ctx, Int32, WireModel, check_one_of, check_sha256, given, require
from vmforge.wire.errors import INVALID, Path

# An absolute path in the build VM: Linux "/..." or Windows "C:\..." (either slash after the drive).
ABSOLUTE = re.compile(r"^(/|[A-Za-z]:[\\/])")


class Step(WireModel):
    """The base of ImageTemplateCustomizer and ImageTemplateInVMValidator: ``name`` is optional."""

    name: str | None = None


class ScriptStep(Step):
    """Shell: a script by URI, or inline commands — exactly one of them (swagger prose)."""

    scriptUri: str | None = None
    sha256Checksum: str | None = None
    inline: list[str] | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        check_one_of(data, ("scriptUri", "inline"), path, ctx)
        check_sha256(data, path, ctx)
        if given(data, "sha256Checksum") and given(data, "inline") and not given(data, "scriptUri"):
            ctx.add(INVALID, "The sha256Checksum can be given only with a scriptUri.", (*path, "sha256Checksum"))


class PowerShellStep(ScriptStep):
    runElevated: bool = False
    runAsSystem: bool = False
    validExitCodes: list[Int32] | None = None

    # The service writes both flags into the template: every example response shows them, false when not sent.
    echo_defaults = ("runElevated", "runAsSystem")

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        if data.get("runAsSystem") is True and data.get("runElevated", False) is False:
            ctx.add(INVALID, "runAsSystem can be true only when runElevated is true.", (*path, "runAsSystem"))


class FileStep(Step):
    sourceUri: str | None = None
    sha256Checksum: str | None = None
    destination: str | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        # Not required by the swagger, but a File step cannot do anything without them: the service requires both.
        require(data, ("sourceUri", "destination"), path, ctx, " for a File step")
        check_sha256(data, path, ctx)
        dest = data.get("destination")
        if isinstance(dest, str) and dest and not ABSOLUTE.match(dest):
            ctx.add(INVALID, f"The destination '{dest[:200]}' must be an absolute path (for example /tmp/file or "
                             "C:\\file).", (*path, "destination"))
