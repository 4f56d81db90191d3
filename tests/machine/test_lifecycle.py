"""A build VM's life, watched from every side, with real QEMU on a blank disk (nothing here needs an image):
it dies with its parent, a boot wait ends when QEMU exits or the run is canceled, and a KVM boot that makes
no progress falls back to TCG once and for all on the host."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest_vm import processes_mentioning
from tests.machine import fakeqemu
from tests.conftest import require_tools as require_tool
from vmforge.disk import qemuimg
from vmforge.events import RunEvents
from vmforge.kinds.base import BuildError, Canceled
from vmforge.machine.accel import Accelerator
from vmforge.runner.guest import BootWatch, boot

pytest_plugins = ["tests.conftest_vm"]


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in ("qemu-system-x86_64", "qemu-img", "pasta", "setpriv", "genisoimage"):
        require_tool(tool)


def blank_disk(where: Path) -> Path:
    disk = where / "blank.qcow2"
    qemuimg.run_qemu_img(["create", "-q", "-f", "qcow2", str(disk), "64M"], timeout=30)
    return disk


CHILD = r"""
import sys, time
from pathlib import Path
from vmforge.machine.qemu import BuildVM, VMSpec
work = Path(sys.argv[1])
vm = BuildVM(VMSpec(disk=work / "blank.qcow2", workdir=work, accel="tcg", network=sys.argv[2], memory_mib=256))
vm.start()
print(vm.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("network", ["isolated", "restricted"])
def test_vm_dies_with_its_parent_even_when_the_parent_is_sigkilled(vm_workdir: Path, network: str) -> None:
    blank_disk(vm_workdir)
    parent = subprocess.Popen([sys.executable, "-c", CHILD, str(vm_workdir), network], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip().isdigit()
        running = processes_mentioning(str(vm_workdir))
        assert running, "QEMU should be running"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while processes_mentioning(str(vm_workdir)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_mentioning(str(vm_workdir)) == []  # pasta and QEMU went with their parent
    finally:
        parent.kill()


def _boot(disk: Path, work: Path, events: RunEvents, **kw):  # noqa: ANN003, ANN202
    loop = asyncio.new_event_loop()
    try:
        return boot(disk, "qcow2", work / "vm", events, loop, vm_size="Standard_B1s", os_type="Linux", **kw)
    finally:
        loop.close()


def test_boot_wait_ends_within_seconds_when_qemu_dies(vm_workdir: Path) -> None:
    disk = blank_disk(vm_workdir)
    events = RunEvents(vm_workdir / "log")
    vms = []

    def killer() -> None:
        while not vms or vms[-1].pid is None:
            time.sleep(0.05)
        time.sleep(1.5)
        os.killpg(vms[-1].pid, signal.SIGKILL)

    threading.Thread(target=killer, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(BuildError, match="stopped while booting") as info:
        _boot(disk, vm_workdir, events, accelerator=Accelerator(None), boot_timeout=120,
              watch=BootWatch(on_vm=lambda vm: vms.append(vm) if vm else None))
    assert time.monotonic() - t0 < 10  # not the boot timeout
    assert info.value.code == "BootFailed" and "QEMU exited with status" in str(info.value)


def test_cancel_during_boot_stops_the_vm_at_once(vm_workdir: Path) -> None:
    disk = blank_disk(vm_workdir)
    registered = []
    t0 = time.monotonic()

    def check_run() -> None:
        if time.monotonic() - t0 > 2:
            raise Canceled()

    with pytest.raises(Canceled):
        _boot(disk, vm_workdir, RunEvents(vm_workdir / "log"), accelerator=Accelerator(None), boot_timeout=120,
              watch=BootWatch(check_run=check_run, on_vm=lambda vm: registered.append(vm)))
    assert time.monotonic() - t0 < 5
    assert registered and registered[0] is not None  # known to the cancel watcher before any SSH login
    assert not registered[0].running()


def test_kvm_boot_without_progress_falls_back_to_tcg_and_the_host_remembers(
        vm_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reproduces the host where a boot sector runs under KVM but a kernel hangs: the probe passes, the
    build VM makes no progress, the engine stops it after the trial bound and boots again under TCG."""
    wrapper, calls, device = fakeqemu.make(vm_workdir, "hangs")
    monkeypatch.setenv("VMFORGE_QEMU", str(wrapper))
    monkeypatch.setenv("VMFORGE_KVM_DEVICE", str(device))
    monkeypatch.delenv("VMFORGE_ACCEL", raising=False)
    disk = blank_disk(vm_workdir)
    store = vm_workdir / "accel.json"
    accelerator = Accelerator(store, trial_seconds=3)
    resets = []
    events = RunEvents(vm_workdir / "log")
    t0 = time.monotonic()
    with pytest.raises(BuildError, match="did not become reachable"):  # a blank disk never reaches SSH
        _boot(disk, vm_workdir, events, accelerator=accelerator, boot_timeout=8,
              reset_disk=lambda: resets.append(time.monotonic() - t0))
    assert fakeqemu.calls(calls) == ["kvm probe", "kvm vm", "tcg vm"]
    assert len(resets) == 1 and 3 <= resets[0] < 10  # the wrong guess cost the trial bound, not 600 s
    log = (vm_workdir / "log").read_text()
    assert "KVM is on trial" in log and "booting again under TCG" in log
    assert json.loads(store.read_text()).popitem()[1]["accel"] == "tcg"
    assert Accelerator(store).decide().accel == "tcg"
