"""SSH host key pinning: the seed hands the guest vmforge's host key, offline injection writes it, and the
client accepts that key only — a server presenting another is refused with a clear error (an asyncssh server
on loopback), while a server that switches to the pinned key within the wait is accepted (the image's own key
answering before cloud-init replaced it). The real boot is in ``test_hostkey_slow.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh
import pytest
import yaml

from tests.machine.test_inject import MIB, make_disk
from vmforge.machine import MachineError
from vmforge.machine.inject import HOST_KEY, debugfs, inject_into_image
from vmforge.machine.seed import SeedConfig, WindowsSeedConfig, user_data, windows_user_data
from vmforge.machine.ssh import KeyPair, SSHSession, fingerprint, generate_keypair, private_openssh


def test_seed_carries_the_host_key_and_drops_the_images_own() -> None:
    host = generate_keypair("host")
    private = private_openssh(host)  # each export differs (OpenSSH's random check bytes): export once
    doc = yaml.safe_load(user_data(SeedConfig(["ssh-ed25519 AAAAk c"], host_key=(private, host.public))))
    assert doc["ssh_keys"] == {"ed25519_private": private, "ed25519_public": host.public}
    assert doc["ssh_deletekeys"] is True and doc["ssh_genkeytypes"] == []
    assert asyncssh.import_private_key(doc["ssh_keys"]["ed25519_private"]).export_public_key("openssh") \
        .decode().split()[:2] == host.public.split()[:2]
    assert "ssh_keys" not in yaml.safe_load(user_data(SeedConfig(["ssh-ed25519 AAAAk c"])))
    # cloudbase-init takes no host key: the Windows seed has none (the key is pinned on first use).
    assert "ssh_keys" not in windows_user_data(WindowsSeedConfig(["ssh-ed25519 AAAAk c"], "pw12345678"))


@pytest.mark.needs_tools("mkfs.ext4", "sfdisk", "debugfs", "qemu-img")
def test_offline_injection_writes_the_host_key(tmp_path: Path) -> None:
    host = generate_keypair("host")
    private = private_openssh(host)
    out = inject_into_image(make_disk(tmp_path, "gpt"), "raw", ["ssh-ed25519 AAAAq kq"], tmp_path / "out.raw",
                            host_key=(private, host.public))
    assert debugfs(out, MIB, [f"cat {HOST_KEY}"]) == private
    assert debugfs(out, MIB, [f"cat {HOST_KEY}.pub"]) == host.public + "\n"
    stat = debugfs(out, MIB, [f"stat {HOST_KEY}"])
    assert "Mode:  0600" in stat and "User:     0" in stat
    assert "Mode:  0644" in debugfs(out, MIB, [f"stat {HOST_KEY}.pub"])


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return True


async def _serve(host_keys: list[KeyPair]) -> tuple[asyncssh.SSHAcceptor, int, list[str]]:
    logins: list[str] = []

    class Server(_Server):
        def auth_completed(self) -> None:
            logins.append("ok")

    acceptor = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[k.private for k in host_keys],
                                     server_factory=Server, process_factory=lambda p: p.exit(0))
    return acceptor, acceptor.sockets[0].getsockname()[1], logins


def test_a_server_with_another_host_key_is_refused() -> None:
    client, pinned, impostor = generate_keypair(), generate_keypair("pinned"), generate_keypair("impostor")

    async def go() -> None:
        acceptor, port, logins = await _serve([impostor])
        try:
            ssh = SSHSession(port, client.private, host_key=pinned.public)
            with pytest.raises(MachineError) as e:
                await ssh.wait_ready(2.0, interval=0.1)
            msg = str(e.value)
            assert "host key mismatch" in msg
            assert fingerprint(pinned.public) in msg and fingerprint(impostor.public) in msg
            assert logins == []  # refused before any authentication
            # The pinned key is accepted (the same server, now with the right key).
            acceptor.close()
            acceptor2, port2, logins2 = await _serve([pinned])
            try:
                async with SSHSession(port2, client.private, host_key=pinned.public) as good:
                    await good.wait_ready(10.0, interval=0.1)
                    assert good.conn.get_server_host_key().export_public_key("openssh").decode().split()[:2] \
                        == pinned.public.split()[:2]
                assert logins2 == ["ok"]
            finally:
                acceptor2.close()
        finally:
            acceptor.close()

    asyncio.run(go())


def test_the_pinned_key_is_awaited_within_the_wait() -> None:
    """The image's own key answers first; once the guest serves the pinned key, the login goes through."""
    client, pinned, own = generate_keypair(), generate_keypair("pinned"), generate_keypair("image-own")

    async def go() -> float:
        acceptor, port, _ = await _serve([own])

        async def swap() -> None:
            nonlocal acceptor
            await asyncio.sleep(1.0)
            acceptor.close()
            await acceptor.wait_closed()
            acceptor = await asyncssh.listen("127.0.0.1", port, server_host_keys=[pinned.private],
                                             server_factory=_Server, process_factory=lambda p: p.exit(0))

        task = asyncio.ensure_future(swap())
        try:
            async with SSHSession(port, client.private, host_key=pinned.public) as ssh:
                return await ssh.wait_ready(20.0, interval=0.1)
        finally:
            await task
            acceptor.close()

    assert asyncio.run(go()) >= 0.9


def test_an_unpinned_session_pins_the_first_key_it_sees() -> None:
    """Windows (no host key in the seed): trust on first use, then the same key for every reconnect."""
    client, first, second = generate_keypair(), generate_keypair("first"), generate_keypair("second")

    async def go() -> None:
        acceptor, port, _ = await _serve([first])
        ssh = SSHSession(port, client.private)
        try:
            await ssh.wait_ready(10.0, interval=0.1)
            assert ssh.host_key is not None and fingerprint(ssh.host_key) == fingerprint(first.public)
            await ssh.close()
        finally:
            acceptor.close()
            await acceptor.wait_closed()
        acceptor = await asyncssh.listen("127.0.0.1", port, server_host_keys=[second.private],
                                         server_factory=_Server, process_factory=lambda p: p.exit(0))
        try:
            with pytest.raises(MachineError, match="host key mismatch"):
                await ssh.wait_ready(1.5, interval=0.1)
        finally:
            acceptor.close()

    asyncio.run(go())


def test_no_unpinned_ssh_beyond_loopback() -> None:
    key = generate_keypair()
    with pytest.raises(MachineError, match="loopback only"):
        SSHSession(22, key.private, host="192.0.2.1")
    SSHSession(22, key.private, host="192.0.2.1", host_key=generate_keypair().public)  # pinned: allowed
