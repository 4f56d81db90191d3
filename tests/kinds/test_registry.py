from __future__ import annotations

import pytest

from vmforge.kinds import REGISTRY, load_all, register
from vmforge.kinds.base import Step


def test_every_wire_type_has_a_kind() -> None:
    load_all()
    assert {("customize", t) for t in ("Shell", "File", "PowerShell", "WindowsRestart", "WindowsUpdate")} <= set(REGISTRY)
    assert {("validate", t) for t in ("Shell", "File", "PowerShell")} <= set(REGISTRY)
    assert {("distribute", t) for t in ("ManagedImage", "SharedImage", "VHD")} <= set(REGISTRY)


def test_duplicate_registration_fails() -> None:
    load_all()
    with pytest.raises(RuntimeError, match="duplicate"):
        @register("customize", "Shell")
        class Again(Step):  # noqa: F841
            def run(self, ctx) -> None:  # noqa: ANN001
                pass


def test_kinds_do_not_import_the_runner() -> None:
    """runner/ builds the plan from kinds/; kinds/ must not reach back into runner/ (no import cycle)."""
    import ast
    from pathlib import Path

    import vmforge.kinds

    offenders = []
    for path in Path(vmforge.kinds.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.name}: {n}" for n in names if n == "vmforge.runner" or n.startswith("vmforge.runner.")]
    assert offenders == []
