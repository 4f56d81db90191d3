from __future__ import annotations

import pytest

from vmforge.kinds import make_step
from vmforge.kinds.customizers.windows_restart import parse_duration
from vmforge.kinds.customizers.windows_update import DEFAULT_FILTERS, filter_expression, script


def test_restart_timeout_parsing() -> None:
    assert parse_duration("5m") == 300 and parse_duration("1h30m") == 5400 and parse_duration(None) == 300
    for bad in ("5x", "m5", "10"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_restart_reconnects_and_checks(make_ctx, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr("time.sleep", lambda s: None)
    ctx = make_ctx(os_type="Windows", statuses=[0, 0])
    make_step("customize", {"type": "WindowsRestart", "restartCheckCommand": "echo ok"}, 0).run(ctx)
    assert ctx.guest.commands == ['shutdown /r /f /t 0 /c "vmforge restart"', "echo ok"]
    assert ctx.guest.reconnects == 1


def test_update_filters_and_script() -> None:
    expr = filter_expression(DEFAULT_FILTERS)
    assert expr.startswith("if ($_.Title -like '*Preview*') { return $false }")
    with pytest.raises(ValueError):
        filter_expression(["maybe:$true"])
    s = script("IsInstalled=0", DEFAULT_FILTERS, 5)
    assert "Select-Object -First 5" in s and "Search('IsInstalled=0')" in s


def test_update_loops_until_nothing_is_left(make_ctx) -> None:  # noqa: ANN001
    ctx = make_ctx(os_type="Windows", statuses=[101, 0, 0])  # round 1 installs (reboot), restart, round 2 clean
    make_step("customize", {"type": "WindowsUpdate", "updateLimit": 3}, 0).run(ctx)
    assert ctx.guest.reconnects == 1 and len(ctx.guest.uploads) == 2


def test_update_needs_windows(make_ctx) -> None:  # noqa: ANN001
    assert make_step("customize", {"type": "WindowsUpdate"}, 0).prepare(make_ctx())


def test_windows_build_steps_run_no_linux_commands(make_ctx) -> None:  # noqa: ANN001
    """Seen: the trim step ran fstrim and dd whatever the OS. Trim and generalize now come from the OS profile."""
    from vmforge.machine.guestos import powershell_script
    from vmforge.runner.build import GeneralizeStep, TrimStep

    ctx = make_ctx(os_type="Windows")
    disk = ctx.work_dir / "build.qcow2"
    disk.write_bytes(b"x")
    ctx.state["disk"] = disk
    TrimStep("vmBoot").run(ctx)
    GeneralizeStep("deprovision").run(ctx)
    trim, generalize = ctx.guest.commands
    for linux in ("fstrim", "dd if=", "/bin/sh", "rm -f", "mkdir -p"):
        assert linux not in trim and linux not in generalize
    assert "Optimize-Volume -DriveLetter C -ReTrim" in powershell_script(trim)
    assert "Sysprep.exe /oobe /generalize" in generalize
