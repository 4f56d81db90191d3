"""The UEFI-only test image (``scripts/build-test-image --uefi``): a GPT disk that boots under OVMF
(``VMSpec(firmware="uefi")``) and that SeaBIOS cannot boot. Marked slow; TIMINGS lines with -s."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from vmforge.disk import qemuimg
from vmforge.machine import MachineError
from vmforge.machine.qemu import BuildVM, VMSpec
from vmforge.machine.seed import SeedConfig, make_seed
from vmforge.machine.ssh import SSHSession, generate_keypair

pytestmark = pytest.mark.slow
BOOT_TIMEOUT = 300
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
# What the serial console shows once a boot loader has run: GRUB's own words, or the kernel's first line.
BOOTED_MARKERS = ("Linux version", "GRUB", "Welcome to")
# The control (the BIOS image under SeaBIOS) must print the kernel's first line within this many seconds.
CONTROL_LIMIT = 90
MIN_NEGATIVE_WAIT = 20


def report(name: str, timings: dict[str, float]) -> None:
    print(f"\nTIMINGS {name} " + json.dumps({k: round(v, 2) for k, v in timings.items()}))


def booted(serial: Path) -> str | None:
    text = serial.read_text(errors="replace") if serial.exists() else ""
    return next((m for m in BOOTED_MARKERS if m in text), None)


def test_uefi_image_is_gpt_with_an_esp_and_no_bios_code(test_image_uefi: Path, tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    qemuimg.convert(test_image_uefi, raw, "raw", src_fmt="qcow2")
    with raw.open("rb") as f:
        head = f.read(1024)
    assert head[512:520] == b"EFI PART", "no GPT header at LBA 1"
    assert head[510:512] == b"\x55\xaa" and head[446 + 4] == 0xEE, "no protective MBR (type 0xEE)"
    assert head[:440] == bytes(440), "the protective MBR carries boot code"
    dump = subprocess.run(["sfdisk", "--dump", str(raw)], capture_output=True, text=True, check=True).stdout
    assert "label: gpt" in dump
    parts = [ln for ln in dump.splitlines() if "start=" in ln]
    assert len(parts) == 2, dump
    assert f"type={ESP_TYPE}" in parts[0], dump
    start = int(parts[0].split("start=")[1].split(",")[0])
    # The ESP holds a PE32+ x86-64 image at the removable-media path (mtools reads it at its byte offset).
    efi = tmp_path / "BOOTX64.EFI"
    subprocess.run(["mcopy", "-n", "-i", f"{raw}@@{start * 512}", "::/EFI/BOOT/BOOTX64.EFI", str(efi)],
                   check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    pe = efi.read_bytes()
    assert pe[:2] == b"MZ"
    pe_off = int.from_bytes(pe[0x3C:0x40], "little")
    assert pe[pe_off:pe_off + 4] == b"PE\0\0" and int.from_bytes(pe[pe_off + 4:pe_off + 6], "little") == 0x8664


def test_uefi_image_boots_under_uefi(test_image_uefi: Path, vm_workdir: Path) -> None:
    t: dict[str, float] = {}
    start = time.monotonic()
    overlay = vm_workdir / "os.qcow2"
    qemuimg.create_overlay(test_image_uefi, overlay, "qcow2")
    keys = generate_keypair()
    seed = make_seed(SeedConfig([keys.public]), vm_workdir / "seed.iso")
    out: list[str] = []
    with BuildVM(VMSpec(disk=overlay, workdir=vm_workdir, seed=seed, firmware="uefi")) as vm:
        t["start"] = time.monotonic() - start

        def alive() -> None:
            if not vm.running():
                raise MachineError(f"{vm.why_stopped()}\n{vm.console_tail()}")

        async def session() -> None:
            async with SSHSession(vm.ssh_port, keys.private) as ssh:
                try:
                    t["boot_to_ssh"] = await ssh.wait_ready(BOOT_TIMEOUT, check=alive)
                except MachineError as exc:
                    raise AssertionError(f"{exc}\nserial console:\n{vm.console_tail()}") from exc
                assert await ssh.run("test -d /sys/firmware/efi", timeout=60) == 0, "guest not booted by UEFI"
                assert await ssh.run("cat /sys/firmware/efi/fw_platform_size",
                                     on_line=lambda s, ln: out.append(ln), timeout=60) == 0
                assert await ssh.run("sync", timeout=60) == 0

        asyncio.run(session())
        t0 = time.monotonic()
        assert vm.powerdown(120), "guest did not power off on system_powerdown"
        t["poweroff"] = time.monotonic() - t0
    assert out == ["64"]
    t["whole_cycle"] = time.monotonic() - start
    report("uefi_boot", t)


def seabios_attempt(image: Path, workdir: Path, wait: float) -> tuple[float | None, str, str, str]:
    """Boot ``image`` under SeaBIOS for up to ``wait`` s, or until the serial console shows a boot loader ran.
    Returns (seconds until it showed, or None), the serial log, SeaBIOS's debug log (port 0x402), and how the
    wait ended: "shown", "ssh" (root logged in), "exited" (QEMU ended) or "timeout"."""
    workdir.mkdir()
    overlay = workdir / "os.qcow2"
    qemuimg.create_overlay(image, overlay, "qcow2")
    keys = generate_keypair()
    seed = make_seed(SeedConfig([keys.public]), workdir / "seed.iso")
    debug = workdir / "seabios.log"
    spec = VMSpec(disk=overlay, workdir=workdir, seed=seed, firmware="bios",
                  extra_args=["-debugcon", f"file:{debug}", "-global", "isa-debugcon.iobase=0x402"])
    shown: float | None = None
    ended = "timeout"
    with BuildVM(spec) as vm:
        start = time.monotonic()

        def watch() -> None:
            nonlocal shown, ended
            if booted(vm.serial_log):
                shown, ended = time.monotonic() - start, "shown"
                raise MachineError("a boot loader ran")
            if not vm.running():
                ended = "exited"
                raise MachineError(vm.why_stopped())

        async def session() -> None:
            nonlocal ended
            async with SSHSession(vm.ssh_port, keys.private) as ssh:
                try:
                    await ssh.wait_ready(wait, check=watch)
                    ended = "ssh"
                except MachineError:
                    pass

        asyncio.run(session())
        vm.kill()
    serial = vm.serial_log.read_text(errors="replace") if vm.serial_log.exists() else ""
    return shown, serial, debug.read_text(errors="replace") if debug.exists() else "", ended


def test_uefi_image_does_not_boot_under_bios(test_image: Path, test_image_uefi: Path, vm_workdir: Path) -> None:
    t: dict[str, float] = {}
    # Control: the same machine, firmware and detection boot the BIOS image; so a UEFI image that could also
    # boot from BIOS (dual-boot, GRUB in the MBR or a BIOS boot partition) would show the same within the wait.
    shown, serial, debug, _ = seabios_attempt(test_image, vm_workdir / "control", CONTROL_LIMIT)
    assert shown is not None, f"control: the BIOS image showed no boot within {CONTROL_LIMIT} s:\n{serial[-2000:]}"
    assert "Booting from Hard Disk" in debug, debug[-2000:]
    t["control_bios_image_to_kernel"] = shown
    wait = max(MIN_NEGATIVE_WAIT, 2 * shown)
    t["negative_wait"] = wait

    shown, serial, debug, ended = seabios_attempt(test_image_uefi, vm_workdir / "uefi-image", wait)
    assert "Booting from Hard Disk" in debug, f"SeaBIOS never tried the disk:\n{debug[-2000:]}"
    assert ended == "timeout", f"the wait ended by {ended!r}, not by the bound:\n{serial[-2000:]}"
    assert shown is None and not any(m in serial for m in BOOTED_MARKERS), serial[-2000:]
    report("uefi_image_under_bios", t)
