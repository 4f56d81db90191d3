"""Real boots of the test image under QEMU (TCG here): the whole build-VM cycle, network isolation, and
offline key injection. Marked slow; each prints a TIMINGS line (run with -s to see it)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from vmforge.disk import qemuimg
from vmforge.machine.inject import inject_into_image
from vmforge.machine.qemu import BuildVM, VMSpec
from vmforge.machine.seed import SeedConfig, make_seed
from vmforge.machine.ssh import SSHSession, generate_keypair

pytestmark = pytest.mark.slow
BOOT_TIMEOUT = 300


class HostServer:
    """A TCP server on all the host's addresses that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def host_ipv4_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    addrs = [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]
    return [a for a in addrs if not a.startswith("127.")]


def listeners_on(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a listening socket on ``port`` in the host's netns."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                found.append(local.split(":")[0])
    return found


def report(name: str, timings: dict[str, float]) -> None:
    print(f"\nTIMINGS {name} " + json.dumps({k: round(v, 2) for k, v in timings.items()}))


def test_full_cycle(test_image: Path, vm_workdir: Path) -> None:
    t: dict[str, float] = {}
    start = time.monotonic()
    overlay = vm_workdir / "os.qcow2"
    qemuimg.create_overlay(test_image, overlay, "qcow2")
    keys = generate_keypair()
    seed = make_seed(SeedConfig([keys.public]), vm_workdir / "seed.iso")
    payload = vm_workdir / "payload.bin"
    payload.write_bytes(os.urandom(20 * (1 << 20)))
    digest = qemuimg.sha256_file(payload)
    server = HostServer()
    events: list[str] = []
    lines: list[tuple[str, str]] = []
    try:
        with BuildVM(VMSpec(disk=overlay, workdir=vm_workdir, seed=seed), progress=events.append) as vm:
            t["start"] = time.monotonic() - start
            assert listeners_on(vm.ssh_port) == ["0100007F"]  # the SSH forward: host loopback only

            async def session() -> None:
                async with SSHSession(vm.ssh_port, keys.private) as ssh:
                    t["boot_to_ssh"] = await ssh.wait_ready(BOOT_TIMEOUT)
                    for cmd in ("echo one; echo two >&2", "uname -r", "cat /etc/debian_version"):
                        t0 = time.monotonic()
                        assert await ssh.run(cmd, on_line=lambda s, ln: lines.append((s, ln)), timeout=60) == 0
                        t[f"cmd:{cmd.split()[0]}"] = time.monotonic() - t0
                    assert await ssh.run("exit 3", timeout=30) == 3
                    t0 = time.monotonic()
                    await ssh.upload(payload, "/tmp/payload.bin")
                    check = f"echo '{digest}  /tmp/payload.bin' | sha256sum -c"
                    assert await ssh.run(check, on_line=lambda s, ln: lines.append((s, ln)), timeout=60) == 0
                    t["upload_20MiB_and_check"] = time.monotonic() - t0
                    # The host's services are out of reach: the slirp gateway, and the host's own addresses.
                    for addr in ["10.0.2.2", *host_ipv4_addresses()]:
                        probe = f"timeout 5 bash -c '</dev/tcp/{addr}/{server.port}'"
                        assert await ssh.run(probe, timeout=30) != 0, f"guest reached host {addr}:{server.port}"
                    # (That the internet stays reachable is shown against a namespace the test makes itself,
                    # tests/machine/test_guestnet_slow.py: tests send no traffic off this machine.)

            asyncio.run(session())
            t0 = time.monotonic()
            assert vm.powerdown(120), "guest did not power off on system_powerdown"
            t["poweroff"] = time.monotonic() - t0
        assert server.accepted == 0
        # A sanity check that the server did listen: the host itself can reach it.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
    finally:
        server.close()
    assert ("stdout", "one") in lines and ("stderr", "two") in lines
    assert ("stdout", "/tmp/payload.bin: OK") in lines
    t0 = time.monotonic()
    vhd = vm_workdir / "out.vhd"
    size = qemuimg.convert_fixed_vhd(overlay, vhd)
    t["fixed_vhd"] = time.monotonic() - t0
    assert qemuimg.check_fixed_vhd(vhd) == size
    t["whole_cycle"] = time.monotonic() - start
    if "VMFORGE_TEST_IMAGE_SECONDS" in os.environ:
        t["test_image_fixture"] = float(os.environ["VMFORGE_TEST_IMAGE_SECONDS"])
    report("full_cycle", t)
    assert any("starting QEMU (tcg" in e or "starting QEMU (kvm" in e for e in events)


def test_offline_injection_boot(test_image: Path, vm_workdir: Path) -> None:
    """No seed: the key is written into the image offline, and root logs in with it."""
    t: dict[str, float] = {}
    start = time.monotonic()
    keys = generate_keypair()
    disk = inject_into_image(test_image, "qcow2", [keys.public], vm_workdir / "os.raw")
    t["inject"] = time.monotonic() - start
    with BuildVM(VMSpec(disk=disk, disk_format="raw", workdir=vm_workdir)) as vm:
        async def session() -> str:
            async with SSHSession(vm.ssh_port, keys.private) as ssh:
                t["boot_to_ssh"] = await ssh.wait_ready(BOOT_TIMEOUT)
                out: list[str] = []
                assert await ssh.run("id -un", on_line=lambda s, ln: out.append(ln), timeout=60) == 0
                return out[0]

        assert asyncio.run(session()) == "root"
        assert vm.powerdown(120)
    t["whole_cycle"] = time.monotonic() - start
    report("offline_injection", t)
