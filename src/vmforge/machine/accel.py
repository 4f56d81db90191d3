"""KVM or TCG — decided on what a build needs, remembered per host, and corrected by the build itself.

``/dev/kvm`` answering proves little under nested virtualisation. Three ways it goes wrong are known:
QEMU aborts ("failed to set MSR"), the guest hangs at "Booting from ROM", or — the worst — real-mode code runs
fine while a Linux kernel hangs right after GRUB loads it (long mode, the MSRs a kernel sets). So:

1. **Probe** (cheap, at start-up): a 512-byte boot sector under ``-accel kvm -cpu host`` must write to the
   serial port and leave through ``isa-debug-exit``. A failed probe means TCG, for certain.
2. **Trial**: a passed probe only makes KVM a *candidate*. The first build VM booted under it is watched: if
   it reaches SSH, KVM is *confirmed* for the host; if it makes no progress within a bound (``trial_seconds``,
   30 s by default) the engine stops it, boots the same run under TCG and records TCG for the host.
3. **Memory**: decisions are kept in ``<data dir>/accel.json``, keyed by what can change the answer — the QEMU
   version, the host kernel release and the CPU model — so a wrong guess costs one trial per host and
   configuration, and an upgrade of any of the three asks again.

``VMFORGE_ACCEL=tcg|kvm`` overrides everything (no probe, no trial, nothing recorded).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vmforge.machine import qemu_binary

Accel = Literal["kvm", "tcg"]
PROBE_EXIT = (0x10 << 1) | 1  # what isa-debug-exit makes of the byte 0x10
TRIAL_SECONDS = float(os.environ.get("VMFORGE_KVM_TRIAL_SECONDS", "30"))

# mov dx,0x3f8; mov al,'K'; out dx,al; mov dx,0xf4; mov al,0x10; out dx,al; hlt; jmp $-1
_CODE = bytes.fromhex("BAF803B04BEEBAF400B010EEF4EBFD")


def boot_sector() -> bytes:
    """The probe's MBR: the code above, zero padding, and the 0x55AA signature."""
    return _CODE + bytes(510 - len(_CODE)) + b"\x55\xaa"


def probe_command(accel: Accel, image: Path, serial: Path, qemu: str | None = None) -> list[str]:
    """The probe's QEMU command line: the CPU model and SMP a build VM would get under ``accel``."""
    cpu = "host" if accel == "kvm" else "max"
    return [qemu or qemu_binary(), "-accel", accel, "-cpu", cpu, "-smp", "2", "-nodefaults", "-display", "none",
            "-m", "64", "-drive", f"file={image},format=raw,if=ide,index=0",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-serial", f"file:{serial}", "-no-reboot"]


def kvm_device() -> str:
    """The KVM device (``$VMFORGE_KVM_DEVICE``, default ``/dev/kvm``)."""
    return os.environ.get("VMFORGE_KVM_DEVICE") or "/dev/kvm"


def kvm_usable() -> bool:
    return os.access(kvm_device(), os.R_OK | os.W_OK)


def probe(accel: Accel, timeout: float = 15.0) -> bool:
    """Whether the probe boot sector runs under ``accel`` within ``timeout`` seconds."""
    if accel == "kvm" and not kvm_usable():
        return False
    with tempfile.TemporaryDirectory(prefix="vmforge-accel-") as tmp:
        image, serial = Path(tmp) / "probe.img", Path(tmp) / "serial.log"
        image.write_bytes(boot_sector())
        try:
            proc = subprocess.Popen(probe_command(accel, image, serial), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            return False
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return False
        return code == PROBE_EXIT and serial.exists() and b"K" in serial.read_bytes()


def host_key() -> dict[str, str]:
    """What can change the answer on this host: the QEMU version, the host kernel, the CPU model."""
    try:
        out = subprocess.run([qemu_binary(), "--version"], capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL).stdout
        version = out.splitlines()[0].strip() if out else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        version = "unknown"
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"qemu": version, "kernel": os.uname().release, "cpu": cpu}


@dataclass(frozen=True)
class Decision:
    accel: Accel
    confirmed: bool  # KVM: a build VM reached SSH under it; TCG: always
    reason: str
    source: str  # "forced" | "remembered" | "probe"

    @property
    def on_trial(self) -> bool:
        """KVM that no kernel has yet proven: the next boot is watched and may fall back."""
        return self.accel == "kvm" and not self.confirmed


class Accelerator:
    """The accelerator decision of one host, persisted in ``path`` (``<data dir>/accel.json``)."""

    def __init__(self, path: Path | None, *, probe_timeout: float = 15.0, trial_seconds: float = TRIAL_SECONDS):
        self.path = path
        self.probe_timeout = probe_timeout
        self.trial_seconds = trial_seconds
        self._lock = threading.Lock()
        self._key: dict[str, str] | None = None
        self._decision: Decision | None = None

    @property
    def key(self) -> dict[str, str]:
        if self._key is None:
            self._key = host_key()
        return self._key

    def _key_text(self) -> str:
        return " | ".join(f"{k}={v}" for k, v in sorted(self.key.items()))

    def _load(self) -> dict[str, dict]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _store(self, accel: Accel, confirmed: bool, reason: str) -> None:
        if self.path is None:
            return
        data = self._load()
        data[self._key_text()] = {"accel": accel, "confirmed": confirmed, "reason": reason, "host": self.key,
                                  "decided": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def decide(self) -> Decision:
        """The accelerator for the next VM (probing once per process when nothing is remembered)."""
        forced = os.environ.get("VMFORGE_ACCEL", "").strip().lower()
        if forced in ("kvm", "tcg"):
            return Decision(forced, True, "set by VMFORGE_ACCEL", "forced")  # type: ignore[arg-type]
        with self._lock:
            if self._decision is None:
                remembered = self._load().get(self._key_text())
                if remembered and remembered.get("accel") in ("kvm", "tcg"):
                    self._decision = Decision(remembered["accel"], bool(remembered.get("confirmed")),
                                              str(remembered.get("reason", "")), "remembered")
                elif probe("kvm", self.probe_timeout):
                    self._decision = Decision("kvm", False, "the KVM probe boot passed; the first build VM "
                                              "confirms it (or falls back to TCG)", "probe")
                else:
                    why = f"{kvm_device()} is not usable" if not kvm_usable() else "the KVM probe boot failed"
                    self._decision = Decision("tcg", True, why, "probe")
            return self._decision

    def confirm(self, accel: Accel, how: str) -> None:
        """A build VM reached user space under ``accel``: remember it for the host."""
        with self._lock:
            d = self._decision
            if d is None or d.accel != accel or d.confirmed:
                return
            self._decision = Decision(accel, True, how, "remembered")
            self._store(accel, True, how)

    def reject_kvm(self, reason: str) -> None:
        """A KVM boot made no progress: this host uses TCG from now on."""
        with self._lock:
            self._decision = Decision("tcg", True, reason, "remembered")
            self._store("tcg", True, reason)

    def describe(self) -> str:
        """One line for ``vmforge serve``'s start-up output."""
        d = self.decide()
        where = f" (remembered in {self.path})" if d.source == "remembered" and self.path else ""
        state = "on trial" if d.on_trial else d.source
        return f"{d.accel} [{state}] — {d.reason}{where}"


_default = Accelerator(None)
_shared: dict[Path, Accelerator] = {}
_shared_lock = threading.Lock()


def for_store(path: Path) -> Accelerator:
    """The one :class:`Accelerator` of this process for ``path`` (the server's start-up line and its builds
    see the same decision, made by one probe)."""
    key = Path(path).resolve()
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Accelerator(key)
        return _shared[key]


def detect(timeout: float = 15.0) -> Accel:
    """The accelerator of a VM started without an explicit one (no persistence; see :class:`Accelerator`)."""
    _default.probe_timeout = timeout
    return _default.decide().accel
