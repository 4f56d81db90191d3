"""The build VM's network namespace, from the inside: ``python -m vmforge.machine.netns CONFIG -- QEMU...``.

Started under ``unshare --net`` (so it holds real root capabilities in a namespace of its own) by
``vmforge.machine.network.IsolatedNetwork``, it

1. brings ``lo`` up and adds the addresses the guest's services answer on (the metadata address
   169.254.169.254 and the host's DNS resolvers): local addresses win over every route;
2. installs the deny list (``vmforge.netpolicy.GuestPolicy.denied()``) as ``prohibit`` routes in table 1000,
   looked up by a rule before ``main``: QEMU's slirp opens ordinary sockets in this namespace, so a guest's
   connection to a denied address fails at its ``connect()``/``sendto()`` with EACCES, while a prefix not in
   the table (the internet, ``--build-allow`` holes) falls through to the routes pasta installs in ``main``;
3. binds the relays' listening sockets and forks the relay: a child that dies with QEMU (``PR_SET_PDEATHSIG``)
   and forwards each TCP connection, and each DNS datagram (framed as DNS over TCP), to a Unix socket of the
   host side (``vmforge.machine.guestsvc``): Unix sockets are files, so they cross network namespaces;
4. says ``ready`` on stdout, waits for ``go`` on stdin (pasta has attached by then) and execs QEMU.

Any failure before the exec ends the process with a message on stderr (it reaches the run's error).
Standard library only, so that it starts fast.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

DENY_TABLE = 1000
RULE_PREF = 1000
RELAY_TIMEOUT = 15.0
_PR_SET_PDEATHSIG = 1


def ip_batches(config: dict[str, Any]) -> dict[int, str]:
    """The ``ip -4 -batch`` and ``ip -6 -batch`` commands for ``config`` (``deny``: prefixes;
    ``lo_addresses``: addresses), by IP version."""
    lines: dict[int, list[str]] = {4: ["link set lo up"], 6: []}
    for version in (4, 6):
        lines[version].append(f"rule add pref {RULE_PREF} lookup {DENY_TABLE}")
    for addr in config.get("lo_addresses", []):
        ip = ipaddress.ip_address(addr)
        lines[ip.version].append(f"addr replace {ip}/{ip.max_prefixlen} dev lo"
                                 + (" nodad" if ip.version == 6 else ""))
    for prefix in config.get("deny", []):
        net = ipaddress.ip_network(prefix)
        lines[net.version].append(f"route add prohibit {net} table {DENY_TABLE}")
    return {v: "\n".join(ls) + "\n" for v, ls in lines.items()}


def _fail(message: str) -> None:
    sys.stderr.write(f"vmforge netns: {message}\n")
    sys.stderr.flush()
    os._exit(70)


def configure(config: dict[str, Any]) -> None:
    for version, batch in ip_batches(config).items():
        proc = subprocess.run(["ip", f"-{version}", "-batch", "-"], input=batch, capture_output=True, text=True,
                              timeout=30)
        if proc.returncode != 0:
            _fail(f"configuring the namespace failed: {proc.stderr.strip() or proc.stdout.strip()}")


def bind_relays(config: dict[str, Any]) -> list[tuple[socket.socket, str, str]]:
    """Listening sockets of the relays, bound now so that they exist before the guest runs."""
    bound = []
    for r in config.get("relays", []):
        ip = ipaddress.ip_address(r["address"])
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        kind = socket.SOCK_DGRAM if r["protocol"] == "dns-udp" else socket.SOCK_STREAM
        s = socket.socket(family, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((str(ip), int(r["port"])))
        except OSError as e:
            _fail(f"cannot bind the relay on {ip}:{r['port']}: {e}")
        if kind == socket.SOCK_STREAM:
            s.listen(64)
        s.setblocking(False)
        bound.append((s, r["protocol"], r["unix"]))
    return bound


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _relay_tcp(path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        ureader, uwriter = await asyncio.open_unix_connection(path)
    except OSError:
        writer.close()
        return
    try:
        await asyncio.gather(_pump(reader, uwriter), _pump(ureader, writer))
    finally:
        for w in (writer, uwriter):
            w.close()


class _DnsRelay(asyncio.DatagramProtocol):
    """DNS datagrams to the host side, one framed exchange per query."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        asyncio.get_running_loop().create_task(self._answer(data, addr))

    async def _answer(self, query: bytes, addr: Any) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.path), RELAY_TIMEOUT)
            try:
                writer.write(struct.pack("!H", len(query)) + query)
                await writer.drain()
                size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), RELAY_TIMEOUT))[0]
                answer = await asyncio.wait_for(reader.readexactly(size), RELAY_TIMEOUT)
            finally:
                writer.close()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, struct.error):
            return
        if self.transport is not None:
            self.transport.sendto(answer, addr)


async def _serve(bound: list[tuple[socket.socket, str, str]]) -> None:
    loop = asyncio.get_running_loop()
    for sock, protocol, path in bound:
        if protocol == "dns-udp":
            await loop.create_datagram_endpoint(lambda p=path: _DnsRelay(p), sock=sock)
        else:
            await asyncio.start_server(lambda r, w, p=path: _relay_tcp(p, r, w), sock=sock)
    await asyncio.Event().wait()


def _relay_child(bound: list[tuple[socket.socket, str, str]], parent: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # QEMU is gone already
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    try:
        asyncio.run(_serve(bound))
    finally:
        os._exit(0)


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        _fail("usage: python -m vmforge.machine.netns CONFIG -- QEMU ARGS...")
    config = json.loads(Path(argv[0]).read_text())
    command = argv[2:]
    configure(config)
    bound = bind_relays(config)
    if bound:
        parent = os.getpid()
        if os.fork() == 0:
            _relay_child(bound, parent)
        for sock, _, _ in bound:
            sock.close()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        _fail("the host side did not attach the network")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        _fail(f"cannot run {command[0]}: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
