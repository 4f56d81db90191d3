"""Which addresses vmforge refuses to reach on a user's behalf: one classification for the outbound guard of
downloads (``vmforge.fetch``) and for the build VM's deny list (``vmforge.machine.netns``).

``refusal_reason(ip)`` says why an address is not a public unicast one (loopback, link-local, private, CGNAT,
multicast, reserved), looking through the IPv6 forms that carry an IPv4 address — IPv4-mapped ``::ffff:0:0/96``,
IPv4-compatible ``::/96``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``, Teredo
``2001::/32`` (client address inverted in the last 32 bits) and ISATAP interface ids (``…:0:5efe:a.b.c.d``,
``…:200:5efe:a.b.c.d``) — so that ``[2002:7f00:1::]`` is refused as 127.0.0.1 is. Local-use NAT64 ``64:ff9b:1::/48`` (a
site's own translator, its embedding varies) is refused whole.

``GuestPolicy`` is the build VM's boundary: prefixes it never reaches (``ALWAYS_DENIED`` and the host's own
addresses, which no allow opens), prefixes it does not reach by default (``DEFAULT_DENIED``, the private ranges,
plus the operator's ``--build-deny``) and the operator's ``--build-allow`` holes in the latter. ``denied()``
flattens that into the disjoint prefix list the namespace's ``prohibit`` routes are made of: holes are left
uncovered rather than routed, so the kernel's ordinary lookup (the main table) handles them.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Union

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

_net = ipaddress.ip_network

CGNAT = _net("100.64.0.0/10")
SIX_TO_FOUR = _net("2002::/16")
NAT64 = _net("64:ff9b::/96")
NAT64_LOCAL = _net("64:ff9b:1::/48")
TEREDO = _net("2001::/32")
V4_MAPPED = _net("::ffff:0:0/96")
V4_COMPATIBLE = _net("::/96")
_ISATAP_IDS = (0x00005EFE, 0x02005EFE)  # bits 64..95 of an ISATAP interface id (u/l bit clear or set)

# Never reachable from a build VM, whatever the operator allows: this machine and its link.
ALWAYS_DENIED: tuple[IPNetwork, ...] = tuple(_net(p) for p in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "fe80::/10", "ff00::/8",
    "::/96",            # IPv4-compatible (deprecated): no public use
    "::ffff:0:0/96",    # IPv4-mapped: never on the wire; the IPv4 rules decide
    "2001::/32",        # Teredo: the client's IPv4 address is inverted, no prefix can single it out
    "64:ff9b:1::/48",   # local-use NAT64: its embedding varies by site
))
# Not reachable from a build VM unless ``--build-allow`` opens them (a private package mirror, say).
DEFAULT_DENIED: tuple[IPNetwork, ...] = tuple(_net(p) for p in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries and the form that carries it, or None."""
    n = int(ip)
    if ip in V4_MAPPED:
        return ipaddress.IPv4Address(n & 0xFFFFFFFF), "an IPv4-mapped address"
    if ip in V4_COMPATIBLE and n > 1:  # :: and ::1 are themselves
        return ipaddress.IPv4Address(n & 0xFFFFFFFF), "an IPv4-compatible address"
    if ip in SIX_TO_FOUR:
        return ipaddress.IPv4Address((n >> 80) & 0xFFFFFFFF), "a 6to4 address"
    if ip in NAT64:
        return ipaddress.IPv4Address(n & 0xFFFFFFFF), "a NAT64 address"
    if ip in TEREDO:
        return ipaddress.IPv4Address(~n & 0xFFFFFFFF), "a Teredo address"
    if (n >> 32) & 0xFFFFFFFF in _ISATAP_IDS:
        return ipaddress.IPv4Address(n & 0xFFFFFFFF), "an ISATAP address"
    return None


def _plain_reason(ip: IPAddress) -> str | None:
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata services live here)"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a shared (CGNAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """Why the outbound guard refuses ``ip`` by default, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL:
            return "a local-use NAT64 address (a site's own translator)"
        inner = embedded_ipv4(ip)
        if inner is not None:
            v4, form = inner
            why = _plain_reason(v4)
            if why:
                return f"{form} of {v4}, {why}"
            if ip in V4_MAPPED or ip in NAT64:  # the IPv4 address is what would be reached (DNS64 hands out
                return None                     # NAT64 addresses for every IPv4-only site)
    return _plain_reason(ip)


def parse_cidrs(values: Iterable[str], what: str = "CIDR") -> list[IPNetwork]:
    """CIDRs or single addresses (host bits allowed); ValueError naming the bad one."""
    out = []
    for v in values:
        try:
            out.append(_net(str(v).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{what} {v!r} is not an IPv4 or IPv6 CIDR or address") from None
    return out


def _subtract(nets: Iterable[IPNetwork], holes: Iterable[IPNetwork]) -> list[IPNetwork]:
    """The addresses of ``nets`` not in any of ``holes``, as prefixes."""
    result = list(nets)
    for hole in holes:
        nxt: list[IPNetwork] = []
        for n in result:
            if n.version != hole.version or not n.overlaps(hole):
                nxt.append(n)
            elif not n.subnet_of(hole):  # type: ignore[arg-type]
                nxt.extend(n.address_exclude(hole))  # type: ignore[arg-type]
        result = nxt
    return result


def _embeddings(v4: ipaddress.IPv4Network) -> list[ipaddress.IPv6Network]:
    """The 6to4 and well-known NAT64 prefixes that carry the IPv4 prefix ``v4``."""
    a, length = int(v4.network_address), v4.prefixlen
    return [ipaddress.IPv6Network((int(SIX_TO_FOUR.network_address) | a << 80, 16 + length)),
            ipaddress.IPv6Network((int(NAT64.network_address) | a, 96 + length))]


def _collapse(nets: Iterable[IPNetwork]) -> list[IPNetwork]:
    v4 = [n for n in nets if n.version == 4]
    v6 = [n for n in nets if n.version == 6]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]  # type: ignore[arg-type]


@dataclass
class GuestPolicy:
    """The build VM's deny list; see the module doc. ``host`` is this machine's own addresses."""

    deny: list[IPNetwork] = field(default_factory=list)  # the operator's, beside DEFAULT_DENIED
    allow: list[IPNetwork] = field(default_factory=list)
    host: list[IPAddress] = field(default_factory=list)

    def denied(self) -> list[IPNetwork]:
        """Disjoint, collapsed prefixes the guest must not reach (IPv4 first)."""
        always = [*ALWAYS_DENIED, *(ipaddress.ip_network(a) for a in self.host)]
        optional = _subtract([*DEFAULT_DENIED, *self.deny], self.allow)
        v4 = _collapse(n for n in [*always, *optional] if n.version == 4)
        embedded = [e for n in v4 for e in _embeddings(n)]  # type: ignore[arg-type]
        return _collapse([*v4, *always, *optional, *embedded])

    def reachable(self, ip: IPAddress) -> bool:
        """Whether the guest may reach ``ip`` (what the routes enforce; for tests and messages)."""
        return not any(ip in n for n in self.denied() if n.version == ip.version)

    def to_json(self) -> dict[str, list[str]]:
        return {"deny": [str(n) for n in self.deny], "allow": [str(n) for n in self.allow],
                "host": [str(a) for a in self.host]}


def policy_from_settings(settings: object, host: Iterable[IPAddress] | None = None) -> GuestPolicy:
    """The build VM's policy of ``Settings.build_deny``/``build_allow`` and this host's addresses."""
    return GuestPolicy(deny=parse_cidrs(getattr(settings, "build_deny", []) or [], "build_deny"),
                       allow=parse_cidrs(getattr(settings, "build_allow", []) or [], "build_allow"),
                       host=list(host) if host is not None else host_addresses())


def host_addresses() -> list[IPAddress]:
    """Every address of every interface of this host's network namespace (``ip -j addr``)."""
    try:
        out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=10,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"cannot list this host's addresses (ip -j addr show): {e}") from None
    addrs: list[IPAddress] = []
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            try:
                addrs.append(ipaddress.ip_address(info["local"].split("%", 1)[0]))
            except (KeyError, ValueError):
                continue
    return sorted(set(addrs), key=lambda a: (a.version, int(a)))
