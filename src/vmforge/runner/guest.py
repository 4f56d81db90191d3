"""A booted build VM reached over SSH, with a synchronous face for the steps.

Each run owns one asyncio loop (the steps run in the run's worker thread); SSH calls go through it. Killing
the VM from another thread (cancel, timeout) drops the connection, which ends any command in flight.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmforge.machine import MachineError
from vmforge.machine.accel import Accelerator
from vmforge.machine.firmware import Firmware
from vmforge.machine.guestos import for_os, new_password
from vmforge.machine.qemu import BuildVM, VMSpec
from vmforge.netpolicy import GuestPolicy
from vmforge.machine.ssh import KeyPair, SSHSession, fingerprint, generate_keypair, private_openssh
from vmforge.events import RunEvents
from vmforge.kinds.base import BuildError

BOOT_TIMEOUT = float(os.environ.get("VMFORGE_BOOT_TIMEOUT", "600"))

# vmSize → (vCPUs, memory MiB), as Azure defines the sizes; capped to the host at boot.
VM_SIZES: dict[str, tuple[int, int]] = {
    "standard_b1s": (1, 1024), "standard_b1ms": (1, 2048), "standard_b2s": (2, 4096), "standard_b2ms": (2, 8192),
    "standard_d1_v2": (1, 3584), "standard_d2_v2": (2, 7168), "standard_d2s_v3": (2, 8192),
    "standard_d2_v3": (2, 8192), "standard_d4s_v3": (4, 16384), "standard_d2ds_v4": (2, 8192),
    "standard_d2ds_v5": (2, 8192), "standard_d4ds_v5": (4, 16384), "standard_ds1_v2": (1, 3584),
    "standard_ds2_v2": (2, 7168), "standard_f2s_v2": (2, 4096),
}
DEFAULT_SIZE = "standard_d2ds_v4"
  # AIB's default build VM size


def machine_shape(vm_size: str | None) -> tuple[int, int]:
    """vCPUs and MiB for a vmSize, capped to the host (at most all host CPUs and half its memory)."""
    cpus, mem = VM_SIZES.get((vm_size or DEFAULT_SIZE).lower(), VM_SIZES[DEFAULT_SIZE])
    host_cpus = os.cpu_count() or 1
    host_mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    return max(1, min(cpus, host_cpus)), max(512, min(mem, host_mem // 2, 4096))


@dataclass
class Guest:
    vm: BuildVM
    ssh: SSHSession
    loop: asyncio.AbstractEventLoop
    events: RunEvents
    os_type: str = "Linux"

    def run(self, command: str, *, timeout: float | None = None, source: str = "") -> int:
        def on_line(stream: str, line: str) -> None:
            self.events.line(line, source)

        try:
            return self.loop.run_until_complete(self.ssh.run(command, on_line=on_line, timeout=timeout))
        except Exception as e:  # noqa: BLE001 — a dropped connection is a failed command
            if not self.vm.running():
                raise BuildError("The build VM stopped while a command was running.") from e
            raise BuildError(f"The command could not run over SSH: {e}") from e

    def upload(self, local: Path, remote: str) -> None:
        try:
            self.loop.run_until_complete(self.ssh.upload(local, remote))
        except Exception as e:  # noqa: BLE001
            raise BuildError(f"Uploading to {remote} failed: {e}") from e

    def reconnect(self, timeout: float) -> float:
        self.loop.run_until_complete(self.ssh.close())
        return self.loop.run_until_complete(self.ssh.wait_ready(timeout))

    def poweroff(self, inside_wait: float = 60.0, acpi_wait: float = 10.0) -> str:
        """Power the VM off the way Packer's ``shutdown_command`` does — ``sync`` and a power-off from inside,
        over SSH (minimal images have no acpid or logind and ignore the ACPI button) — then the ACPI button,
        then a hard stop. Returns what worked, for the log."""
        vm, t0 = self.vm, time.monotonic()
        sent = False
        if vm.running():
            try:
                self.loop.run_until_complete(self.ssh.run(for_os(self.os_type).poweroff_command(), timeout=15))
                sent = True
            except Exception:  # noqa: BLE001 — the connection drops as the guest goes down
                sent = True
        self.close()
        if sent and vm.wait(inside_wait):
            return f"powered off from inside in {time.monotonic() - t0:.1f} s"
        if vm.powerdown(acpi_wait):
            return f"powered off by the ACPI power button after {time.monotonic() - t0:.1f} s"
        vm.stop(timeout=0)
        return f"did not power off within {time.monotonic() - t0:.0f} s: stopped"

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.ssh.close())
        except Exception:  # noqa: BLE001, S110 — the VM may be gone already
            pass


class KvmNoProgress(Exception):
    """A build VM on KVM trial made no progress within the bound."""


@dataclass
class BootWatch:
    """What a boot wait watches besides SSH: the run (cancel, deadline) and, on a KVM trial, progress."""

    check_run: Callable[[], None] = lambda: None  # raises Canceled / TimedOut
    on_vm: Callable[[BuildVM | None], None] = lambda vm: None  # the VM is registered for the cancel watcher


def _watch(vm: BuildVM, watch: BootWatch, trial_seconds: float | None) -> Callable[[], None]:
    """The check called every 0.25 s while SSH is not ready."""
    started = time.monotonic()
    last_size, last_growth = 0, started

    def check() -> None:
        nonlocal last_size, last_growth
        watch.check_run()
        if not vm.running():
            raise BuildError(f"The build VM stopped while booting ({vm.why_stopped()}). Console tail:\n"
                             f"{vm.console_tail()}", code="BootFailed")
        if trial_seconds is None:
            return
        now = time.monotonic()
        size = vm.console_size()
        if size != last_size:
            last_size, last_growth = size, now
        # No SSH within the bound and a console quiet for a third of it (a kernel that hangs prints nothing),
        # or no SSH within three times the bound whatever the console does.
        if (now - started > trial_seconds and now - last_growth > trial_seconds / 3) or \
                now - started > 3 * trial_seconds:
            raise KvmNoProgress(f"no SSH after {now - started:.0f} s, console quiet for {now - last_growth:.0f} s")

    return check


def boot(disk: Path, fmt: str, workdir: Path, events: RunEvents, loop: asyncio.AbstractEventLoop, *,
         vm_size: str | None, os_type: str, with_seed: bool = True, key=None, hostname: str = "vmforge-build",  # noqa: ANN001
         accelerator: Accelerator | None = None, firmware: Firmware = "bios", watch: BootWatch | None = None,
         reset_disk: Callable[[], None] | None = None, boot_timeout: float | None = None,
         host_key: KeyPair | None = None, guest_policy: GuestPolicy | None = None,
         metadata_app: Any = None, data_disks: list[Path] | None = None):  # noqa: ANN201
    """Start a VM on ``disk`` and log in over SSH; returns (Guest, key pair).

    The SSH host key is pinned: ``host_key`` when the caller already wrote it into ``disk`` (offline
    injection), else a fresh one handed over in the seed; where the guest's agent cannot take one (Windows),
    the first key seen is pinned for the session.

    The wait ends as soon as anything makes SSH impossible: QEMU exiting (the console tail goes into the
    error), a cancel or the run's deadline (``watch.check_run`` raises), ``boot_timeout``. Under KVM that no
    kernel has yet proven on this host (``accelerator``'s trial), a boot that makes no progress within the
    trial bound is stopped and the same disk (reset by ``reset_disk``) is booted again under TCG, which the
    host then keeps. ``data_disks`` (qcow2) are attached after the OS disk, in order (LUN 0, 1, …)."""
    keys = key or generate_keypair()
    watch = watch or BootWatch()
    accelerator = accelerator or Accelerator(None)
    timeout = boot_timeout or BOOT_TIMEOUT
    workdir.mkdir(parents=True, exist_ok=True)
    cpus, mem = machine_shape(vm_size)
    guest_os = for_os(os_type)  # who logs in, and how the key (and on Windows a fallback password) gets there
    password = new_password(guest_os.login_user) if guest_os.needs_password and with_seed else None
    host = host_key or generate_keypair("vmforge-build-host")
    host_pair = (private_openssh(host), host.public)
    pinned = host.public if (guest_os.seeds_host_key if with_seed else host_key is not None) else None
    events.line(f"SSH host key {fingerprint(pinned)} pinned" if pinned else
                "SSH host key: pinned on first use (the guest's agent cannot take one)", "ssh")
    while True:
        decision = accelerator.decide()
        seed = None
        if with_seed:  # a fresh instance-id each boot: a retried boot is a new instance to the guest's agent
            seed = guest_os.seed([keys.public], hostname, password, workdir / "seed.iso", host_key=host_pair)
        vm = BuildVM(VMSpec(disk=disk, workdir=workdir, disk_format=fmt, seed=seed, cpus=cpus, memory_mib=mem,
                            accel=decision.accel, firmware=firmware, guest_policy=guest_policy,
                            metadata_app=metadata_app, data_disks=list(data_disks or [])),
                    progress=lambda m: events.line(m, "vm"))
        watch.on_vm(vm)
        trial = accelerator.trial_seconds if decision.on_trial else None
        if trial is not None:
            events.line(f"KVM is on trial on this host ({decision.reason}): a boot without progress within "
                        f"{trial:g} s falls back to TCG", "vm")
        ssh = SSHSession(vm.ssh_port, keys.private, username=guest_os.login_user, password=password,
                         host_key=pinned, progress=lambda m: events.line(m, "ssh"))
        try:
            vm.start()
            loop.run_until_complete(ssh.wait_ready(timeout, interval=0.25, check=_watch(vm, watch, trial)))
        except KvmNoProgress as e:
            tail = vm.console_tail(300).strip().splitlines()
            vm.kill()
            watch.on_vm(None)
            reason = (f"a build VM booted under KVM made no progress ({e}; console last showed "
                      f"{tail[-1][:120]!r})" if tail else f"a build VM booted under KVM made no progress ({e})")
            accelerator.reject_kvm(reason)
            events.line(f"{reason}: stopping it and booting again under TCG. This host uses TCG from now on "
                        f"(remembered for {accelerator.key['qemu']}, kernel {accelerator.key['kernel']}, CPU "
                        f"{accelerator.key['cpu']}).", "vm")
            if reset_disk is not None:
                reset_disk()
            continue
        except MachineError as e:
            vm.stop(timeout=0)
            raise BuildError(f"The build VM did not become reachable over SSH: {e}. Console tail:\n"
                             f"{vm.console_tail()}", code="BootFailed") from e
        except BaseException:
            vm.stop(timeout=0)
            raise
        if decision.on_trial:
            accelerator.confirm("kvm", "a build VM booted under KVM and reached SSH")
            events.line("KVM confirmed for this host: the build VM reached SSH under it", "vm")
        return Guest(vm, ssh, loop, events, os_type), keys
