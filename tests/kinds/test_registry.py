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
