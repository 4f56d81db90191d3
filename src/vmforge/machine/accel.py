"""KVM or TCG? Decided by a real probe boot, because ``/dev/kvm`` may answer while nested guests hang
("Booting from ROM") or abort ("failed to set MSR").

The probe boots a 512-byte boot sector that writes ``K`` to the serial port and leaves QEMU through an
``isa-debug-exit`` device (exit status 33). KVM is used only when that finishes within the timeout; the
answer is cached for the process. ``VMFORGE_ACCEL=tcg|kvm`` overrides the probe.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Literal

Accel = Literal["kvm", "tcg"]
PROBE_EXIT = (0x10 << 1) | 1  # what isa-debug-exit makes of the byte 0x10
_cache: dict[str, Accel] = {}
_lock = threading.Lock()

# mov dx,0x3f8; mov al,'K'; out dx,al; mov dx,0xf4; mov al,0x10; out dx,al; hlt; jmp $-1
_CODE = bytes.fromhex("BAF803B04BEEBAF400B010EEF4EBFD")


def boot_sector() -> bytes:
    """The probe's MBR: the code above, zero padding, and the 0x55AA signature."""
    return _CODE + bytes(510 - len(_CODE)) + b"\x55\xaa"


def probe_command(accel: Accel, image: Path, serial: Path, qemu: str = "qemu-system-x86_64") -> list[str]:
    """The probe's QEMU command line: the CPU model and SMP a build VM would get under ``accel``."""
    cpu = "host" if accel == "kvm" else "max"
    return [qemu, "-accel", accel, "-cpu", cpu, "-smp", "2", "-nodefaults", "-display", "none", "-m", "64",
            "-drive", f"file={image},format=raw,if=ide,index=0",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-serial", f"file:{serial}", "-no-reboot"]


def probe(accel: Accel, timeout: float = 15.0) -> bool:
    """Whether a guest boots under ``accel`` within ``timeout`` seconds."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return False
    if accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with tempfile.TemporaryDirectory(prefix="vmforge-accel-") as tmp:
        image, serial = Path(tmp) / "probe.img", Path(tmp) / "serial.log"
        image.write_bytes(boot_sector())
        proc = subprocess.Popen(probe_command(accel, image, serial, qemu), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return False
        return code == PROBE_EXIT and serial.exists() and b"K" in serial.read_bytes()


def detect(timeout: float = 15.0) -> Accel:
    """``VMFORGE_ACCEL`` if set, else ``kvm`` if its probe boot succeeds, else ``tcg`` (cached per process)."""
    forced = os.environ.get("VMFORGE_ACCEL", "").strip().lower()
    if forced in ("kvm", "tcg"):
        return forced  # type: ignore[return-value]
    with _lock:
        if "answer" not in _cache:
            _cache["answer"] = "kvm" if probe("kvm", timeout) else "tcg"
        return _cache["answer"]
