"""The one address classification (vmforge.netpolicy): IPv6 forms that carry an IPv4 address, the outbound
guard that uses it, and the build VM's deny prefixes."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from vmforge import netpolicy
from vmforge.fetch import FetchPolicy, FetchRefused, download
from vmforge.netpolicy import GuestPolicy, embedded_ipv4, refusal_reason

A = ipaddress.ip_address
N = ipaddress.ip_network


@pytest.mark.parametrize("ip,v4,form", [
    ("::ffff:10.1.2.3", "10.1.2.3", "IPv4-mapped"),
    ("::10.1.2.3", "10.1.2.3", "IPv4-compatible"),
    ("2002:7f00:1::", "127.0.0.1", "6to4"),
    ("2002:a9fe:a9fe:1::5", "169.254.169.254", "6to4"),
    ("64:ff9b::c0a8:101", "192.168.1.1", "NAT64"),
    # Teredo: server 65.54.227.120, client 10.0.0.1 stored inverted (f5ff:fffe).
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1", "Teredo"),
    ("2001:db8:1:2:0:5efe:a00:1", "10.0.0.1", "ISATAP"),
    ("2001:db8:1:2:200:5efe:7f00:1", "127.0.0.1", "ISATAP"),
])
def test_embedded_ipv4(ip: str, v4: str, form: str) -> None:
    found = embedded_ipv4(A(ip))
    assert found is not None and found[0] == A(v4) and form in found[1]


def test_plain_ipv6_carries_nothing() -> None:
    for ip in ("2606:4700::1111", "::1", "::", "fd00::1", "2001:db8::1"):
        assert embedded_ipv4(A(ip)) is None, ip


@pytest.mark.parametrize("ip,words", [
    ("::ffff:127.0.0.1", "IPv4-mapped address of 127.0.0.1, a loopback"),
    ("::169.254.169.254", "IPv4-compatible address of 169.254.169.254, a link-local"),
    ("2002:0a00:0001::1", "6to4 address of 10.0.0.1, a private"),
    ("2002:6440:1::", "6to4 address of 100.64.0.1, a shared (CGNAT)"),
    ("64:ff9b::7f00:1", "NAT64 address of 127.0.0.1, a loopback"),
    ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
    ("64:ff9b:1::808:808", "local-use NAT64"),  # refused whole, even with a public address inside
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo address of 10.0.0.1, a private"),
    ("2001:db8:1::5efe:c0a8:101", "ISATAP address of 192.168.1.1, a private"),
    ("2606:4700:1::200:5efe:a9fe:a9fe", "ISATAP address of 169.254.169.254, a link-local"),
])
def test_transition_forms_of_refused_ipv4_are_refused(ip: str, words: str) -> None:
    assert words in (refusal_reason(A(ip)) or ""), refusal_reason(A(ip))


def test_transition_forms_of_public_ipv4() -> None:
    assert refusal_reason(A("::ffff:8.8.8.8")) is None  # mapped: judged as the IPv4 address it means
    assert refusal_reason(A("2002:808:808::1")) is None  # 6to4 of a public address is public
    assert refusal_reason(A("64:ff9b::808:808")) is None  # so is well-known NAT64
    assert refusal_reason(A("2606:4700:1::200:5efe:808:808")) is None
    assert refusal_reason(A("2606:4700::1111")) is None and refusal_reason(A("1.1.1.1")) is None


@pytest.mark.parametrize("host", ["[2002:7f00:1::]", "[64:ff9b::7f00:1]", "[::127.0.0.1]",
                                  "[2001:0:4136:e378:8000:63bf:80ff:fffe]", "[fd00::5efe:7f00:1]"])
def test_download_refuses_transition_forms(tmp_path: Path, host: str) -> None:
    with pytest.raises(FetchRefused) as e:
        download(f"http://{host}/x?sig=secret", tmp_path / "out", policy=FetchPolicy())
    assert e.value.status == 400 and "secret" not in e.value.message
    assert not (tmp_path / "out").exists()


def test_download_allow_cidr_still_wins(tmp_path: Path) -> None:
    # An operator CIDR covering the IPv6 form itself opens it (the request then fails to connect: nothing
    # listens there, and the error is DownloadFailed, not FetchRefused).
    policy = FetchPolicy(allow_cidrs=[N("64:ff9b::/96")], timeout=3)
    with pytest.raises(Exception) as e:
        download("http://[64:ff9b::7f00:1]:9/x", tmp_path / "out", policy=policy)
    assert not isinstance(e.value, FetchRefused)


HOST = [A("192.0.2.2"), A("172.17.0.1"), A("fd00::2"), A("2001:db8:5::7")]


def test_guest_policy_defaults() -> None:
    p = GuestPolicy(host=HOST)
    for ip in ("127.0.0.1", "169.254.169.254", "169.254.1.1", "10.9.9.9", "172.16.0.1", "192.168.1.1",
               "100.64.0.1", "192.0.2.2", "172.17.0.1", "0.0.0.0", "224.0.0.251", "255.255.255.255",
               "::1", "fe80::1", "fd12::1", "fd00::2", "2001:db8:5::7", "ff02::1", "::ffff:8.8.8.8",
               "2002:a9fe:a9fe::1", "2002:c0a8:101::", "64:ff9b::a00:1", "64:ff9b::c000:202",
               "2001:0:4136:e378:8000:63bf:f5ff:fffe", "64:ff9b:1::1"):
        assert not p.reachable(A(ip)), ip
    for ip in ("8.8.8.8", "192.0.2.3", "203.0.113.80", "2606:4700::1111", "2002:808:808::1",
               "64:ff9b::808:808", "2001:db8:5::8"):
        assert p.reachable(A(ip)), ip


def test_guest_policy_allow_punches_holes_in_optional_denies_only() -> None:
    p = GuestPolicy(deny=[N("198.51.100.0/24")], allow=[N("10.20.0.0/16"), N("198.51.100.128/25"),
                                                          N("169.254.169.0/24"), N("192.0.2.0/24")], host=HOST)
    assert p.reachable(A("10.20.30.40")) and not p.reachable(A("10.21.0.1"))
    assert p.reachable(A("2002:0a14:1e28::1")) and p.reachable(A("64:ff9b::a14:1e28"))  # its embeddings too
    assert not p.reachable(A("198.51.100.5")) and p.reachable(A("198.51.100.200"))
    assert not p.reachable(A("169.254.169.254"))  # link-local: no allow opens it
    assert not p.reachable(A("192.0.2.2")) and p.reachable(A("192.0.2.3"))  # the host's own address stays shut


def test_guest_policy_prefixes_are_disjoint_and_cover_exactly() -> None:
    p = GuestPolicy(allow=[N("10.20.0.0/16")], host=HOST)
    nets = p.denied()
    for a in nets:
        for b in nets:
            assert a is b or a.version != b.version or not a.overlaps(b), (a, b)
    assert N("10.0.0.0/12") in nets and N("10.21.0.0/16") in nets and N("10.20.0.0/16") not in nets
    assert sum(1 for n in nets if n.version == 4 and n.subnet_of(N("10.0.0.0/8"))) == 8  # /8 minus a /16
    assert [n.version for n in nets] == sorted(n.version for n in nets)  # IPv4 first


def test_parse_cidrs_names_the_bad_one() -> None:
    assert netpolicy.parse_cidrs([" 10.1.2.3/8 ", "::1"]) == [N("10.0.0.0/8"), N("::1/128")]
    with pytest.raises(ValueError, match="build_deny '10.0.0.300/8'"):
        netpolicy.parse_cidrs(["10.0.0.300/8"], "build_deny")


def test_host_addresses_lists_loopback_and_more() -> None:
    addrs = netpolicy.host_addresses()
    assert A("127.0.0.1") in addrs and len(addrs) >= 2


def test_settings_and_policy_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from vmforge.settings import Settings

    monkeypatch.setenv("VMFORGE_BUILD_DENY", '["198.51.100.7/24"]')
    s = Settings(build_allow=["10.1.0.0/16"])
    assert s.build_deny == ["198.51.100.0/24"] and s.build_allow == ["10.1.0.0/16"]
    p = netpolicy.policy_from_settings(s, host=[A("192.0.2.2")])
    assert not p.reachable(A("198.51.100.9")) and p.reachable(A("10.1.2.3")) and not p.reachable(A("192.0.2.2"))
    with pytest.raises(ValidationError, match="build_allow 'mirror'"):
        Settings(build_allow=["mirror"])
