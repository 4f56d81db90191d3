"""The host side of the build VM's services: what the relays in its namespace (``vmforge.machine.netns``)
reach over Unix sockets in the VM's work directory.

``dns.sock``
    DNS messages framed as DNS over TCP (a 2-byte length, then the message). Each is forwarded from the host's
    own network to the resolvers of the host's ``/etc/resolv.conf`` (UDP, then TCP when the answer is
    truncated). So the guest resolves names as the host does, and the resolver's address needs no hole in the
    deny list: nothing but DNS reaches it, even when it is private or link-local (GCP's 169.254.169.254).
``imds.sock``
    HTTP for an ASGI app (the run's instance metadata service, ``vmforge.identity.imds``), served by uvicorn.

Both run in one thread with its own event loop, started before QEMU and stopped with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DNS_TIMEOUT = 3.0
RESOLV_CONF = Path("/etc/resolv.conf")


def resolvers(path: Path = RESOLV_CONF) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf (scoped link-local ones keep their ``%zone``)."""
    found = []
    try:
        text = path.read_text()
    except OSError:
        return []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                ipaddress.ip_address(parts[1].split("%", 1)[0])
            except ValueError:
                continue
            found.append(parts[1])
    return found


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, txid: bytes) -> None:
        self.txid = txid
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data[:2] == self.txid and not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def _ask_tcp(server: str, port: int, query: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(server, port), DNS_TIMEOUT)
    try:
        writer.write(struct.pack("!H", len(query)) + query)
        await writer.drain()
        size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), DNS_TIMEOUT))[0]
        return await asyncio.wait_for(reader.readexactly(size), DNS_TIMEOUT)
    finally:
        writer.close()


async def forward_dns(query: bytes, servers: list[str], port: int = 53) -> bytes | None:
    """The first answer of ``servers`` to ``query`` (a DNS message), or None."""
    if len(query) < 12:
        return None
    loop = asyncio.get_running_loop()
    for server in servers:
        try:
            transport, proto = await loop.create_datagram_endpoint(lambda: _Udp(query[:2]),
                                                                   remote_addr=(server, port))
            try:
                transport.sendto(query)
                answer = await asyncio.wait_for(proto.answer, DNS_TIMEOUT)
            finally:
                transport.close()
            if len(answer) > 2 and answer[2] & 0x02:  # TC: truncated, ask again over TCP
                answer = await _ask_tcp(server, port, query)
            return answer
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            continue
    return None


class GuestServices:
    """The DNS forwarder (always) and the metadata app (when given) of one VM, on Unix sockets in ``workdir``."""

    def __init__(self, workdir: Path, metadata_app: Any = None, dns_servers: list[str] | None = None,
                 dns_port: int = 53) -> None:
        self.dns_socket = workdir / "dns.sock"
        self.imds_socket = workdir / "imds.sock"
        self.metadata_app = metadata_app
        self.dns_servers = resolvers() if dns_servers is None else dns_servers
        self.dns_port = dns_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._uvicorn: Any = None

    def start(self, timeout: float = 15.0) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure), daemon=True,
                                        name=f"vmforge-guestsvc-{self.dns_socket.parent.name}")
        self._thread.start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError("the build VM's host-side services did not start")
        if failure:
            self.stop()
            raise RuntimeError(f"the build VM's host-side services failed to start: {failure[0]}")

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready, failure))
        except BaseException as e:  # noqa: BLE001 — reported to start(), or logged after it
            if not ready.is_set():
                failure.append(e)
            else:
                log.exception("build VM services stopped")
        finally:
            ready.set()
            loop.close()

    async def _main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        self._stop = asyncio.Event()
        for sock in (self.dns_socket, self.imds_socket):
            sock.unlink(missing_ok=True)
        dns = await asyncio.start_unix_server(self._dns_client, path=str(self.dns_socket))
        self.dns_socket.chmod(0o600)
        server_task = None
        if self.metadata_app is not None:
            import uvicorn

            config = uvicorn.Config(self.metadata_app, uds=str(self.imds_socket), log_level="warning",
                                    access_log=False, lifespan="off")
            self._uvicorn = uvicorn.Server(config)
            server_task = asyncio.get_running_loop().create_task(self._uvicorn.serve())
            while not self._uvicorn.started:
                if server_task.done():
                    server_task.result()
                    raise RuntimeError("the metadata service did not start")
                await asyncio.sleep(0.02)
        ready.set()
        try:
            await self._stop.wait()
        finally:
            dns.close()
            if self._uvicorn is not None:
                self._uvicorn.should_exit = True
                if server_task is not None:
                    await asyncio.wait([server_task], timeout=5)
            for sock in (self.dns_socket, self.imds_socket):
                sock.unlink(missing_ok=True)

    async def _dns_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(2)
                query = await reader.readexactly(struct.unpack("!H", head)[0])
                answer = await forward_dns(query, self.dns_servers, self.dns_port)
                if answer is None:
                    break
                writer.write(struct.pack("!H", len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        """Stop serving and remove the sockets; idempotent, never raises."""
        loop, thread = self._loop, self._thread
        if loop is not None and self._stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        if thread is not None:
            thread.join(10)
        self._thread = None
