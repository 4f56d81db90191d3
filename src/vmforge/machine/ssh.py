"""SSH to a build VM with asyncssh: one connection for the whole build, no ``ssh`` process per command.

Host keys are pinned. vmforge makes the build VM's ed25519 host key itself (:func:`generate_keypair`, per VM)
and hands it to the guest (cloud-init's ``ssh_keys`` in the NoCloud seed, or written offline by
:mod:`vmforge.machine.inject`); :class:`SSHSession` then trusts that key alone (asyncssh ``known_hosts``).
Until the guest serves it — the image's own keys can answer before cloud-init has replaced them — a login is
refused and retried like any other, within the boot timeout; if the pinned key never shows up the error names
both fingerprints. Where no key can be handed over (cloudbase-init has no host-key setting), the first key seen
is pinned for every later connection of the session (reconnects after a restart). Unpinned first contact
happens only through the port forward on the host's loopback: any other address is refused then.
The client key is an ed25519 pair made per run; an optional password is the fallback when the key is refused
(a Windows guest: see :mod:`vmforge.machine.guestos`).

Windows OpenSSH's SFTP names files ``/C:/Windows/Temp/x``: :func:`sftp_path` turns ``C:/...`` and ``C:\\...``
into that form, and leaves POSIX paths alone.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from vmforge.machine import MachineError, Progress, no_progress

LineCallback = Callable[[str, str], None]  # (stream: "stdout" | "stderr", line)
LOOPBACK = ("127.0.0.1", "::1", "localhost")
KEY_FIRST = ("publickey", "keyboard-interactive", "password")
_DRIVE = re.compile(r"[A-Za-z]:(?:[\\/]|$)")


def sftp_path(remote: str) -> str:
    """The SFTP form of a guest path: ``C:\\Windows\\Temp\\x`` or ``C:/Windows/Temp/x`` → ``/C:/Windows/Temp/x``
    (absolute, as Windows OpenSSH's SFTP server names it); any other path unchanged."""
    if _DRIVE.match(remote):
        return "/" + remote.replace("\\", "/")
    return remote


@dataclass(frozen=True)
class KeyPair:
    """A per-run client key pair."""

    private: asyncssh.SSHKey
    public: str  # OpenSSH one-line form, for authorized_keys


def generate_keypair(comment: str = "vmforge-build") -> KeyPair:
    """A fresh ed25519 key pair (a client key, or a build VM's host key)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    return KeyPair(key, key.export_public_key("openssh").decode().strip())


def private_openssh(pair: KeyPair) -> str:
    """The private key in OpenSSH's file format (what sshd reads as ``/etc/ssh/ssh_host_ed25519_key``)."""
    return pair.private.export_private_key("openssh").decode()


def fingerprint(public: str) -> str:
    """``SHA256:...`` of an OpenSSH public key line."""
    return asyncssh.import_public_key(public).get_fingerprint("sha256")


class SSHSession:
    """One SSH connection to ``host:port`` as ``username``: by ``key``, else by ``password`` when given;
    the server must present ``host_key`` (an OpenSSH public key line) when given."""

    def __init__(self, port: int, key: asyncssh.SSHKey, *, username: str = "root", host: str = "127.0.0.1",
                 password: str | None = None, host_key: str | None = None,
                 progress: Progress = no_progress) -> None:
        if host_key is None and host not in LOOPBACK:
            raise MachineError(f"refusing SSH without a pinned host key to {host}: loopback only")
        self.host, self.port, self.key, self.username = host, port, key, username
        self.password = password
        self.host_key = host_key
        self.progress = progress
        self._conn: asyncssh.SSHClientConnection | None = None

    async def _connect(self, timeout: float) -> asyncssh.SSHClientConnection:
        extra = {} if self.password is None else {"password": self.password, "preferred_auth": KEY_FIRST}
        known = None if self.host_key is None else ([asyncssh.import_public_key(self.host_key)], [], [])
        conn = await asyncssh.connect(
            self.host, self.port, username=self.username, client_keys=[self.key], known_hosts=known,
            agent_path=None, config=None, connect_timeout=timeout, login_timeout=timeout,
            keepalive_interval=15, keepalive_count_max=4, **extra)
        if self.host_key is None and (served := conn.get_server_host_key()) is not None:
            self.host_key = served.export_public_key("openssh").decode().strip()  # trusted on first use
        return conn

    async def _served_fingerprint(self) -> str:
        """The fingerprint of the key the server presents now, for an error message ("unknown" if none)."""
        alg = asyncssh.import_public_key(self.host_key or "").get_algorithm() if self.host_key else None
        try:
            key = await asyncio.wait_for(asyncssh.get_server_host_key(
                self.host, self.port, server_host_key_algs=[alg] if alg else (), config=None), 3)
        except (OSError, asyncssh.Error, asyncio.TimeoutError):
            return "unknown"
        return key.get_fingerprint("sha256") if key is not None else "unknown"

    async def wait_ready(self, timeout: float, interval: float = 0.25,
                         check: Callable[[], None] | None = None) -> float:
        """Try to log in every ``interval`` s until it works; return the seconds it took.

        ``check`` is called every ``interval`` s, also while a connection attempt is pending, and ends the wait
        by raising (the VM has exited, the run was canceled, its deadline passed, a KVM trial made no
        progress). Nothing here blocks for longer than ``interval`` without calling it (but for the last, 3 s
        at most: fetching the key an impostor presents, for the error)."""
        start = time.monotonic()
        last = "no attempt"
        key_refused = False
        while (left := timeout - (time.monotonic() - start)) > 0:
            if check is not None:
                check()
            attempt = asyncio.ensure_future(self._connect(min(10.0, max(left, 1.0))))
            try:
                while not attempt.done():
                    await asyncio.wait({attempt}, timeout=interval)
                    if not attempt.done() and check is not None:
                        check()
                    if time.monotonic() - start > timeout:
                        break
            except BaseException:
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
                raise
            if not attempt.done():
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
                break
            try:
                self._conn = attempt.result()
                waited = time.monotonic() - start
                self.progress(f"SSH ready after {waited:.1f} s")
                return waited
            except asyncssh.HostKeyNotVerifiable:
                key_refused = True  # the image's own key before the guest installed the pinned one, or an impostor
                last = "the server's host key is not the pinned one"
            except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(interval)
        if key_refused and self.host_key is not None:
            raise MachineError(
                f"SSH host key mismatch: the server at {self.host}:{self.port} never presented the build VM's "
                f"pinned host key {fingerprint(self.host_key)} within {timeout:g} s (it presents "
                f"{await self._served_fingerprint()}); refusing to log in")
        raise MachineError(f"SSH not ready after {timeout:g} s ({last})")

    @property
    def conn(self) -> asyncssh.SSHClientConnection:
        if self._conn is None:
            raise MachineError("SSH session not connected: call wait_ready() first")
        return self._conn

    async def run(self, command: str, *, on_line: LineCallback | None = None,
                  timeout: float | None = None) -> int:
        """Run ``command``, streaming output lines to ``on_line``; return its exit status (-1 if killed)."""
        proc: asyncssh.SSHClientProcess[str] = await self.conn.create_process(
            command, stdin=asyncssh.DEVNULL, encoding="utf-8", errors="replace")

        async def pump(stream: asyncssh.SSHReader[str], name: str) -> None:
            while line := await stream.readline():
                if on_line is not None:
                    on_line(name, line.rstrip("\r\n"))

        try:
            await asyncio.wait_for(asyncio.gather(pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"),
                                                  proc.wait_closed()), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            proc.close()
            raise MachineError(f"command timed out after {timeout:g} s: {command[:200]}") from None
        status = proc.exit_status
        return -1 if status is None else status

    async def upload(self, local: Path | str, remote: str) -> None:
        """Copy a local file to ``remote`` (a POSIX path, or a Windows one such as ``C:/Windows/Temp/x.ps1``)."""
        async with self.conn.start_sftp_client() as sftp:
            await sftp.put(str(local), sftp_path(remote))

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
            self._conn = None

    async def __aenter__(self) -> SSHSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
