"""A booted build VM reached over SSH, with a synchronous face for the steps.

Each run owns one asyncio loop (the steps run in the run's worker thread); SSH calls go through it. Killing
the VM from another thread (cancel, timeout) drops the connection, which ends any command in flight.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from vmforge.machine.qemu import BuildVM, VMSpec
from vmforge.machine.seed import SeedConfig, make_seed
from vmforge.machine.ssh import SSHSession, generate_keypair
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
DEFAULT_SIZE = "standard_d2ds_v4"  # AIB's default build VM size


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

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.ssh.close())
        except Exception:  # noqa: BLE001, S110 — the VM may be gone already
            pass


def boot(disk: Path, fmt: str, workdir: Path, events: RunEvents, loop: asyncio.AbstractEventLoop, *,
         vm_size: str | None, os_type: str, with_seed: bool = True, key=None, hostname: str = "vmforge-build"):  # noqa: ANN001, ANN201
    """Start a VM on ``disk`` and log in over SSH; returns (Guest, key pair)."""
    keys = key or generate_keypair()
    workdir.mkdir(parents=True, exist_ok=True)
    seed = None
    if with_seed:
        seed = make_seed(SeedConfig(authorized_keys=[keys.public], hostname=hostname), workdir / "seed.iso")
    cpus, mem = machine_shape(vm_size)
    vm = BuildVM(VMSpec(disk=disk, workdir=workdir, disk_format=fmt, seed=seed, cpus=cpus, memory_mib=mem),
                 progress=lambda m: events.line(m, "vm"))
    vm.start()
    ssh = SSHSession(vm.ssh_port, keys.private, progress=lambda m: events.line(m, "ssh"))
    try:
        loop.run_until_complete(ssh.wait_ready(BOOT_TIMEOUT, interval=0.25))
    except Exception as e:
        vm.stop(timeout=0)
        tail = ""
        try:
            tail = vm.serial_log.read_text(errors="replace")[-1500:]
        except OSError:
            pass
        raise BuildError(f"The build VM did not become reachable over SSH: {e}. Console tail:\n{tail}") from e
    return Guest(vm, ssh, loop, events, os_type), keys
