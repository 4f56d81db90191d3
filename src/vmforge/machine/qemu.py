"""``BuildVM``: one QEMU process (KVM or TCG) on an overlay disk, daemonized properly and always reaped.

* The OS disk is attached first (``bootindex=0``), the NoCloud seed second as a CD-ROM: SeaBIOS otherwise
  may never reach GRUB.
* QEMU gets no stdin/stdout (its stderr goes to a file), runs in its own session and process group, and is
  killed with that group: under the ``isolated`` network the group holds the namespace wrapper (QEMU after
  its exec) and its relay; pasta, attached to the namespace from outside, has a group of its own, killed too.
* Tied to its parent: pasta and QEMU each get a parent-death signal (``setpriv --pdeathsig KILL``), so when
  the process that started them dies — even by SIGKILL — pasta dies, and QEMU with it. (Linux sends the signal
  when the *thread* that forked exits: a VM is started and stopped by the same run thread.)
* The serial console goes to ``serial.log``; a QMP socket gives a clean ``system_powerdown`` and ``quit``.
* Every wait has a timeout; ``stop()`` is graceful first, then kills. A context manager and a finalizer make
  sure no process outlives the object or the interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmforge.machine import MachineError, Progress, no_progress, qemu_binary, qmp
from vmforge.machine.accel import Accel, detect
from vmforge.machine import firmware as fw
from vmforge.machine.firmware import Firmware, machine_args
from vmforge.machine import network
from vmforge.machine.guestsvc import GuestServices
from vmforge.machine.network import NetworkMode, free_port, netdev_args, wrapper_args
from vmforge.netpolicy import GuestPolicy, host_addresses


@dataclass
class VMSpec:
    """What to boot and how."""

    disk: Path
    workdir: Path
    disk_format: str = "qcow2"
    seed: Path | None = None
    cpus: int = 2
    memory_mib: int = 2048
    accel: Accel | None = None  # None: detect() (a probe boot, cached)
    network: NetworkMode = "isolated"
    firmware: Firmware = "bios"  # vmforge.machine.firmware.for_generation(hyperVGeneration)
    extra_args: list[str] = field(default_factory=list)
    # ``isolated`` only: what the guest may not reach (None: the defaults and this host's addresses), and an
    # ASGI app answering at http://169.254.169.254/ for this VM alone (None: nothing answers there).
    guest_policy: GuestPolicy | None = None
    metadata_app: Any = None
    # Data disks (qcow2), attached after the OS disk in order: LUN n is the guest's n-th virtio disk after the OS
    # disk (/dev/vdb, /dev/vdc, … on Linux), serial ``lun-<n>`` (/dev/disk/by-id/virtio-lun-<n>).
    data_disks: list[Path] = field(default_factory=list)


def parent_death_args() -> list[str]:
    """``setpriv --pdeathsig KILL``: the next program dies with the process (thread) that started it."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL"] if setpriv else []


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class BuildVM:
    """A build VM. ``start()``, reach it at ``127.0.0.1:ssh_port``, ``stop()`` (or use ``with``)."""

    def __init__(self, spec: VMSpec, progress: Progress = no_progress) -> None:
        self.spec = spec
        self.progress = progress
        self.ssh_port = free_port()
        spec.workdir.mkdir(parents=True, exist_ok=True)
        self.serial_log = spec.workdir / "serial.log"
        self.stderr_log = spec.workdir / "qemu.stderr"
        self.qmp_socket = spec.workdir / "qmp.sock"
        self.accel: Accel = spec.accel or detect()
        self.netns_config = spec.workdir / "netns.json"
        self._proc: subprocess.Popen[bytes] | None = None
        self._pasta: subprocess.Popen[bytes] | None = None
        self._pasta_finalizer: weakref.finalize | None = None
        self._services: GuestServices | None = None
        self._finalizer: weakref.finalize | None = None

    def command(self) -> list[str]:
        """The whole command line (network wrapper included)."""
        s = self.spec
        tie = parent_death_args()
        wrapper = wrapper_args(s.network, self.netns_config)
        args = (tie + wrapper + tie if wrapper else tie) + [
            qemu_binary(), "-name", "vmforge-build", "-nodefaults", "-no-user-config", "-display", "none",
            *machine_args(s.firmware, s.workdir), "-accel", self.accel, "-cpu", "host" if self.accel == "kvm" else "max",
            "-smp", str(s.cpus), "-m", str(s.memory_mib),
            "-drive", f"file={s.disk},format={s.disk_format},if=none,id=os,discard=unmap",
            "-device", "virtio-blk-pci,drive=os,bootindex=0",
        ]
        for lun, disk in enumerate(s.data_disks):
            args += ["-drive", f"file={disk},format=qcow2,if=none,id=data{lun},discard=unmap",
                     "-device", f"virtio-blk-pci,drive=data{lun},serial=lun-{lun}"]
        if s.seed is not None:
            args += ["-drive", f"file={s.seed},format=raw,if=none,id=seed,media=cdrom,readonly=on",
                     "-device", "ide-cd,drive=seed"]
        args += ["-device", "virtio-rng-pci", *netdev_args(s.network, self.ssh_port),
                 "-serial", f"file:{self.serial_log}", "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
                 *s.extra_args]
        return args

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def exit_status(self) -> int | None:
        """QEMU's (or its wrapper's) exit status once it has ended."""
        return None if self._proc is None else self._proc.poll()

    def console_tail(self, n: int = 1500) -> str:
        """The end of the serial console, for error messages."""
        try:
            with self.serial_log.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def console_size(self) -> int:
        try:
            return self.serial_log.stat().st_size
        except OSError:
            return 0

    def why_stopped(self) -> str:
        """What QEMU said when it ended early: its exit status and the end of its stderr."""
        status = self.exit_status
        tail = self._stderr_tail(600)
        return f"QEMU exited with status {status}" + (f": {tail}" if tail else "")

    def start(self, timeout: float = 30) -> None:
        """Launch QEMU and wait until its QMP socket answers."""
        if self._proc is not None:
            raise MachineError("BuildVM already started")
        self.qmp_socket.unlink(missing_ok=True)
        fw.prepare(self.spec.firmware, self.spec.workdir)
        isolated = self.spec.network == "isolated"
        if self.spec.metadata_app is not None and not isolated:
            raise MachineError("a metadata service needs network mode 'isolated'")
        if isolated:
            self._prepare_namespace()
        self.progress(f"starting QEMU ({self.accel}, {self.spec.cpus} vCPU, {self.spec.memory_mib} MiB, "
                      f"network {self.spec.network}, ssh on 127.0.0.1:{self.ssh_port})")
        pipe = subprocess.PIPE if isolated else subprocess.DEVNULL
        try:
            with self.stderr_log.open("wb") as err:
                self._proc = subprocess.Popen(self.command(), stdin=pipe, stdout=pipe, stderr=err,
                                              start_new_session=True, close_fds=True)
        except BaseException:
            self._stop_services()
            raise
        self._finalizer = weakref.finalize(self, _killpg, self._proc.pid)
        if isolated:
            try:
                self._pasta = network.attach(self._proc.pid, self.ssh_port, self._proc, parent_death_args())
                self._pasta_finalizer = weakref.finalize(self, _killpg, self._pasta.pid)
            except MachineError as e:
                self.kill()
                raise MachineError(f"{e}: {self._stderr_tail()}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._reap()
                raise MachineError(f"QEMU exited at start: {self._stderr_tail()}")
            if self.qmp_socket.exists():
                try:
                    qmp.command(self.qmp_socket, "query-status", timeout=2)
                    return
                except MachineError:
                    pass
            time.sleep(0.1)
        self.kill()
        raise MachineError(f"QEMU's QMP socket did not answer within {timeout:g} s")

    def _prepare_namespace(self) -> None:
        """The host side of the ``isolated`` network: the deny list and relays for the namespace, the DNS
        forwarder and the metadata app on their Unix sockets."""
        policy = self.spec.guest_policy or GuestPolicy(host=host_addresses())
        self._services = GuestServices(self.spec.workdir, self.spec.metadata_app)
        try:
            self._services.start()
        except RuntimeError as e:
            self._services = None
            raise MachineError(str(e)) from None
        config = network.namespace_config(policy, self.spec.workdir, metadata=self.spec.metadata_app is not None,
                                          dns_servers=self._services.dns_servers)
        self.netns_config.write_text(json.dumps(config, indent=1))

    def _stop_services(self) -> None:
        if self._services is not None:
            self._services.stop()
            self._services = None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the process to end; whether it has."""
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        self._reap()
        return True

    def powerdown(self, timeout: float = 60) -> bool:
        """ACPI power button, then wait for the guest to power off; whether it did. (Minimal images without
        acpid or logind ignore it: power those off from inside, see ``vmforge.runner.guest.Guest.poweroff``.)"""
        if not self.running():
            return True
        self.progress("powering the VM down")
        try:
            qmp.command(self.qmp_socket, "system_powerdown")
        except MachineError:
            return False
        return self.wait(timeout)

    def stop(self, timeout: float = 60) -> None:
        """Graceful (powerdown, ``timeout`` s; 0 skips it), then QMP ``quit``, then SIGKILL to the process
        group. Never raises."""
        if self._proc is None:
            return
        if self.running() and not (timeout > 0 and self.powerdown(timeout)):
            try:
                qmp.command(self.qmp_socket, "quit", timeout=5)
            except MachineError:
                pass
            if not self.wait(10):
                self.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        if self._proc is None:
            return
        _killpg(self._proc.pid)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._reap()

    def _reap(self) -> None:
        # The group holds the namespace wrapper (QEMU after its exec) and the relay it forked; pasta has its own.
        if self._proc is not None:
            _killpg(self._proc.pid)
        if self._pasta is not None:
            _killpg(self._pasta.pid)
            if self._pasta_finalizer is not None:
                self._pasta_finalizer.detach()
            try:
                self._pasta.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._pasta = None
        self._stop_services()
        if self._finalizer is not None:
            self._finalizer.detach()
        self.qmp_socket.unlink(missing_ok=True)

    def _stderr_tail(self, n: int = 2000) -> str:
        try:
            text = self.stderr_log.read_text(errors="replace")
        except OSError:
            return ""
        lines = [ln for ln in text.splitlines() if "syslog" not in ln and "uid_map" not in ln]
        return "\n".join(lines)[-n:]

    def __enter__(self) -> BuildVM:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.stop(timeout=0 if exc_type is not None else 60)  # after an error, no graceful wait
