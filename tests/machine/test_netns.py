"""The build VM's namespace without a VM: the ip commands of the deny list and relays, and the host-side DNS
forwarder over its Unix socket (against a resolver on 127.0.0.1 that the test runs)."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from pathlib import Path

from vmforge.machine import network
from vmforge.machine.guestsvc import GuestServices, resolvers
from vmforge.machine.netns import DENY_TABLE, ip_batches
from vmforge.netpolicy import GuestPolicy


def test_namespace_config_and_ip_commands(tmp_path: Path) -> None:
    policy = GuestPolicy(allow=[ipaddress.ip_network("10.20.0.0/16")], host=[ipaddress.ip_address("192.0.2.2")])
    config = network.namespace_config(policy, tmp_path, metadata=True,
                                      dns_servers=["10.255.255.53", "fe80::1%eth0", "fd00::53"])
    assert config["lo_addresses"] == ["169.254.169.254", "10.255.255.53", "fd00::53"]  # no scoped address
    relays = {(r["protocol"], r["address"], r["port"]): r["unix"] for r in config["relays"]}
    assert relays[("tcp", "169.254.169.254", 80)] == str(tmp_path / "imds.sock")
    assert relays[("dns-udp", "10.255.255.53", 53)] == relays[("tcp", "fd00::53", 53)] == str(tmp_path / "dns.sock")
    assert "10.20.0.0/16" not in config["deny"] and "192.0.2.2/32" in config["deny"]
    batches = ip_batches(config)
    v4, v6 = batches[4].splitlines(), batches[6].splitlines()
    assert v4[:2] == ["link set lo up", f"rule add pref 1000 lookup {DENY_TABLE}"]
    assert "addr replace 169.254.169.254/32 dev lo" in v4 and "addr replace fd00::53/128 dev lo nodad" in v6
    assert f"route add prohibit 169.254.0.0/16 table {DENY_TABLE}" in v4
    assert f"route add prohibit fe80::/10 table {DENY_TABLE}" in v6
    assert all(":" not in line for line in v4) and all("." not in line.split()[3] for line in v6[1:]
                                                       if line.startswith("route"))
    no_md = network.namespace_config(policy, tmp_path, metadata=False, dns_servers=[])
    assert no_md["lo_addresses"] == [] and no_md["relays"] == []


def test_resolvers_reads_nameservers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# x\nsearch example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver bogus\n")
    assert resolvers(conf) == ["10.0.0.2", "fe80::1%eth0"]
    assert resolvers(tmp_path / "missing") == []


class FakeResolver:
    """A UDP 'resolver' on 127.0.0.1 answering each query with its id, flags QR and the query's bytes."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            self.seen.append(data)
            self.sock.sendto(data[:2] + b"\x81\x80" + data[4:], addr)


def test_dns_socket_forwards_framed_queries(tmp_path: Path) -> None:
    resolver = FakeResolver()
    services = GuestServices(tmp_path, dns_servers=["127.0.0.1"], dns_port=resolver.port)
    services.start()
    try:
        assert services.dns_socket.exists() and not services.imds_socket.exists()
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(services.dns_socket))
            for _ in range(2):  # several queries on one connection, as DNS over TCP allows
                s.sendall(struct.pack("!H", len(query)) + query)
                size = struct.unpack("!H", s.recv(2))[0]
                answer = s.recv(size)
                assert answer[:2] == b"\x12\x34" and answer[2] & 0x80 and answer[4:] == query[4:]
        assert resolver.seen == [query, query]
    finally:
        services.stop()
        resolver.sock.close()
    assert not services.dns_socket.exists()
