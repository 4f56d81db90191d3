"""One small module per ``type`` value of a template's customize / validate / distribute entries.

``register(phase, type)`` fills a registry keyed by (phase, type); a duplicate registration fails at import.
``make_step(phase, options)`` builds the step a template entry asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vmforge.kinds.base import Step

REGISTRY: dict[tuple[str, str], type[Step]] = {}

PHASES = ("customize", "validate", "distribute")
JSON_LISTS = {"customize": "customize", "validate": "validate.inVMValidations", "distribute": "distribute"}


def register(phase: str, type_: str) -> Callable[[type[Step]], type[Step]]:
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}")

    def deco(cls: type[Step]) -> type[Step]:
        key = (phase, type_)
        if key in REGISTRY:
            raise RuntimeError(f"duplicate step kind registration for {key}: {REGISTRY[key]!r} and {cls!r}")
        REGISTRY[key] = cls
        return cls

    return deco


def load_all() -> None:
    """Import every kind module (they register themselves)."""
    from vmforge.kinds.customizers import file, powershell, shell, windows_restart, windows_update  # noqa: F401
    from vmforge.kinds.distributors import managed_image, shared_image, vhd  # noqa: F401


def make_step(phase: str, options: dict[str, Any], index: int) -> Step:
    load_all()
    cls = REGISTRY.get((phase, options.get("type", "")))
    if cls is None:
        raise KeyError(f"no {phase} step of type {options.get('type')!r}")
    step = cls(name=options.get("name") or options.get("runOutputName") or f"{options.get('type')} {index + 1}",
               options=options, phase_name=phase)
    step.json_path = f"properties.{JSON_LISTS[phase]}[{index}]"
    return step
