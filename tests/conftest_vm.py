"""Pytest plugin for tests that boot real VMs (register with ``pytest_plugins = ["tests.conftest_vm"]``).

* ``test_image`` (session): the cached Debian 12 test image, built once by ``scripts/build-test-image``
  (minutes the first time, instant afterwards; cache in ``$VMFORGE_TEST_IMAGE_CACHE`` or
  ``~/.cache/vmforge/test-images``).
* ``test_image_uefi`` (session): its UEFI-only variant (GPT, EFI System Partition with GRUB x86_64-efi, no BIOS
  boot code), ``scripts/build-test-image --uefi``: derived from ``test_image`` in well under a minute.
* ``vm_workdir``: a temporary directory for one VM; when the test ends (passed or failed), any process whose
  command line names that directory is SIGKILLed, and the test fails if one had been left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "scripts" / "build-test-image"
BUILD_TIMEOUT = 1800


def vm_tools_missing(uefi: bool = False) -> str | None:
    """Why real VMs cannot run here, or None; ``uefi``: also what the UEFI-only test image and OVMF need."""
    if os.geteuid() != 0:
        return "building the test image needs root"
    tools = ["qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "sfdisk", "grub-mkimage",
             "genisoimage", "pasta"]
    if uefi:
        tools += ["mkfs.vfat", "mmd", "mcopy", "mdir", "blkid"]
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} not installed (scripts/bootstrap installs it)"
    if uefi:
        if not Path("/usr/lib/grub/x86_64-efi/linux.mod").is_file():
            return "GRUB's x86_64-efi modules not installed (grub-efi-amd64-bin; scripts/bootstrap installs it)"
        if not any(Path(d, "OVMF_CODE_4M.fd").is_file() or Path(d, "OVMF_CODE.fd").is_file()
                   for d in ("/usr/share/OVMF", "/usr/share/ovmf", "/usr/share/edk2/ovmf")):
            return "OVMF not installed (ovmf; scripts/bootstrap installs it)"
    return None


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


def _build_test_image(*args: str, uefi: bool = False) -> Path:
    """Run ``scripts/build-test-image ARGS``; the path it prints. A missing tool skips, or fails under
    ``VMFORGE_REQUIRE_ALL``."""
    if reason := vm_tools_missing(uefi=uefi):
        if os.environ.get("VMFORGE_REQUIRE_ALL"):
            pytest.fail(f"{reason} (VMFORGE_REQUIRE_ALL forbids skipping; scripts/bootstrap installs the tools)")
        pytest.skip(reason)
    proc = subprocess.run([str(BUILD_SCRIPT), *args], capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        pytest.fail(f"build-test-image {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def test_image() -> Path:
    """Path of the cached test image (qcow2), built on first use."""
    started = time.monotonic()
    path = _build_test_image()
    os.environ.setdefault("VMFORGE_TEST_IMAGE_SECONDS", f"{time.monotonic() - started:.1f}")
    return path


@pytest.fixture(scope="session")
def test_image_uefi(test_image: Path) -> Path:
    """Path of the cached UEFI-only variant of the test image (qcow2; GPT + ESP), built on first use."""
    started = time.monotonic()
    path = _build_test_image("--uefi", uefi=True)
    os.environ.setdefault("VMFORGE_TEST_IMAGE_UEFI_SECONDS", f"{time.monotonic() - started:.1f}")
    return path


@pytest.fixture
def vm_workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh directory for one VM; no process naming it may survive the test."""
    workdir = tmp_path_factory.mktemp("vm")
    yield workdir
    leftovers = processes_mentioning(str(workdir))
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leftovers, f"processes left behind: {leftovers}"
