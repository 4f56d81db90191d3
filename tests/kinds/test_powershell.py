from __future__ import annotations

import pytest

from vmforge.kinds import make_step
from vmforge.kinds.customizers.powershell import command, script_text
from vmforge.kinds.base import BuildError


def test_linux_without_pwsh_fails_clearly(make_ctx) -> None:  # noqa: ANN001
    ctx = make_ctx(statuses=[1])
    with pytest.raises(BuildError) as e:
        make_step("customize", {"type": "PowerShell", "name": "ps", "inline": ["Write-Output hi"]}, 0).run(ctx)
    assert "no PowerShell ('pwsh' was not found)" in str(e.value)


def test_valid_exit_codes(make_ctx) -> None:  # noqa: ANN001
    ctx = make_ctx(os_type="Windows", statuses=[3010])
    make_step("customize", {"type": "PowerShell", "inline": ["x"], "validExitCodes": [0, 3010]}, 0).run(ctx)
    ctx = make_ctx(os_type="Windows", statuses=[1])
    with pytest.raises(BuildError):
        make_step("customize", {"type": "PowerShell", "inline": ["x"]}, 0).run(ctx)


def test_command_construction() -> None:
    assert command("Linux", "/tmp/a.ps1", run_as_system=False, task="t") == \
        "pwsh -NoProfile -NonInteractive -ExecutionPolicy Bypass -File '/tmp/a.ps1'"
    assert command("Windows", "C:/x.ps1", run_as_system=False, task="t").startswith('powershell.exe -NoProfile')
    system = command("Windows", "C:/x.ps1", run_as_system=True, task="vmforge-1")
    assert "schtasks /create /f /tn vmforge-1 /ru SYSTEM" in system and "LastTaskResult" in system
    assert script_text({"inline": ["a", "b"]}).splitlines()[1:3] == ["a", "b"]
