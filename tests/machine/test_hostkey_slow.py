"""One real boot of the test image through the build's boot path (NoCloud seed): the host key the guest's sshd
serves is the one vmforge made, and the image's own host keys are gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vmforge.disk import qemuimg
from vmforge.events import RunEvents
from vmforge.machine.ssh import fingerprint, generate_keypair
from vmforge.runner.guest import boot

pytestmark = pytest.mark.slow


def test_booted_guest_serves_the_pinned_host_key(test_image: Path, vm_workdir: Path) -> None:
    disk = vm_workdir / "os.qcow2"
    qemuimg.create_overlay(test_image, disk, "qcow2")
    events = RunEvents(vm_workdir / "events.log")
    lines: list[str] = []
    events.listeners.append(lines.append)
    host = generate_keypair("vmforge-build-host")
    loop = asyncio.new_event_loop()
    guest = None
    try:
        guest, _ = boot(disk, "qcow2", vm_workdir / "vm", events, loop, vm_size=None, os_type="Linux",
                        host_key=host, boot_timeout=300)
        served = guest.ssh.conn.get_server_host_key()
        assert served is not None and served.get_fingerprint("sha256") == fingerprint(host.public)
        out: list[str] = []
        events.listeners.append(out.append)
        assert guest.run("cat /etc/ssh/ssh_host_ed25519_key.pub; echo; cd /etc/ssh && echo keys: ssh_host_*",
                         timeout=60) == 0
        # cloud-init writes the .pub without a final newline (hence the echo); empty lines are dropped.
        shown = [t for t in (ln.split("] ", 1)[-1] for ln in out) if t.strip()]
        assert host.public.split()[:2] == shown[0].split()[:2], out
        # ssh_deletekeys and ssh_genkeytypes: [] leave only the pinned pair (the image's RSA/ECDSA keys are gone).
        assert shown[1].split() == ["keys:", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"], out
        assert any(f"SSH host key {fingerprint(host.public)} pinned" in ln for ln in lines)
        guest.poweroff()
    finally:
        if guest is not None:
            guest.vm.stop(timeout=0)
        loop.close()
        events.close()
