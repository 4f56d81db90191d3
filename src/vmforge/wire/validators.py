"""In-VM validators: the entries of ``properties.validate.inVMValidations[]``, discriminated by ``type``."""

from __future__ import annotations

from typing import Literal

from vmforge.wire.base import kind
from vmforge.wire.steps import FileStep, PowerShellStep, ScriptStep


@kind("validator")
class ImageTemplateShellValidator(ScriptStep):
    type: Literal["Shell"]


@kind("validator")
class ImageTemplatePowerShellValidator(PowerShellStep):
    type: Literal["PowerShell"]


@kind("validator")
class ImageTemplateFileValidator(FileStep):
    type: Literal["File"]
