"""Outbound downloads (``scriptUri``, ``sourceUri``, image URLs) that cannot be turned against the host: the one
download module of vmforge (the build engine's fetches and the artifact store's http(s) blobUris both come here;
``vmforge.artifacts.sources`` adds only what is the store's own: file:// import roots and Azure Blob accounts).

``download(url, dest, sha256=..., policy=...)`` fetches an ``http(s)`` URL into ``dest``:

- only ``http`` and ``https``; the host name is resolved here, every address it resolves to is checked, and the
  connection goes to the checked address (the request carries the original ``Host`` and TLS SNI, and the
  certificate is verified against the host name): no second resolution, so no DNS-rebinding window;
- loopback, link-local (169.254.0.0/16, the cloud metadata address included), private (RFC 1918, CGNAT
  100.64.0.0/10, IPv6 ULA fc00::/7), unspecified, multicast and reserved addresses, and IPv6 addresses that
  carry one of those (mapped, compatible, 6to4, NAT64, Teredo, ISATAP: ``vmforge.netpolicy``) are refused
  unless an operator CIDR in ``policy.allow_cidrs`` contains them (``vmforge serve --allow-fetch-from CIDR``);
- redirects are followed by hand (at most 5), each target checked again;
- the size (``max_bytes``) and the whole download's time (``timeout``) are bounded;
- the body streams to a temporary file beside ``dest``; the sha256 (if given, any case) is checked *before*
  the file is renamed into place; on any failure nothing is left behind.

Failures raise ``FetchError`` subclasses (ARM errors, status 400: ``FetchRefused``, ``DownloadFailed``,
``ChecksumMismatch``) whose messages name the URL without its query string (SAS tokens stay out of errors and
logs). ``check_sha256`` is the same checksum rule for bytes that came another way.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from vmforge.errors import ArmError
from vmforge.netpolicy import refusal_reason

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

GiB = 1024**3
MAX_REDIRECTS = 5
_CHUNK = 1 << 20


class FetchError(ArmError):
    status = 400
    code = "FetchFailed"


class FetchRefused(FetchError):
    """The URL's scheme or address is not allowed by the fetch policy."""

    code = "FetchRefused"


class DownloadFailed(FetchError):
    code = "DownloadFailed"


class ChecksumMismatch(FetchError):
    code = "ChecksumMismatch"


@dataclass
class FetchPolicy:
    """Where and how much a download may read: operator CIDRs allowed although private or loopback, a size
    bound and a bound on the whole download's time."""

    allow_cidrs: list[IPNetwork] = field(default_factory=list)
    max_bytes: int = 2 * GiB
    timeout: float = 600.0


def policy_from_settings(settings: Any) -> FetchPolicy:
    """The policy of ``Settings.allow_fetch_from`` (CIDRs or single addresses)."""
    cidrs = [ipaddress.ip_network(c.strip(), strict=False) for c in getattr(settings, "allow_fetch_from", []) or []]
    return FetchPolicy(allow_cidrs=cidrs)


def safe_url(url: str) -> str:
    """``url`` without its query string, fragment and user info: what errors and logs may show."""
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{p.port}" if p.port else "")
        return urlunsplit((p.scheme, netloc, p.path, "", ""))
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]


def check_sha256(actual: str, expected: str | None, url: str, *, target: str | None = None) -> None:
    """Raise ``ChecksumMismatch`` unless ``expected`` (hex, any case; empty or None means "not given") is the
    ``actual`` hex digest of what ``url`` named."""
    if expected and expected.strip() and actual.lower() != expected.strip().lower():
        raise ChecksumMismatch(f"The sha256 of '{safe_url(url)}' is {actual.lower()}, expected "
                               f"{expected.strip().lower()}.", target=target)


def check_address(ip: IPAddress, policy: FetchPolicy, url: str) -> None:
    """Raise ``FetchRefused`` unless ``ip`` may be contacted under ``policy``."""
    if any(ip in net for net in policy.allow_cidrs if net.version == ip.version):
        return
    reason = refusal_reason(ip)
    if reason:
        raise FetchRefused(f"Refusing to fetch '{safe_url(url)}': it resolves to {ip}, {reason}. An operator "
                           "can allow it with `vmforge serve --allow-fetch-from CIDR`.")


def resolve(host: str, port: int, policy: FetchPolicy, url: str) -> IPAddress:
    """The address to connect to: every address ``host`` resolves to must pass ``check_address``."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addrs = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise DownloadFailed(f"Cannot resolve the host of '{safe_url(url)}': {e}.") from None
        addrs = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
        if not addrs:
            raise DownloadFailed(f"The host of '{safe_url(url)}' has no address.")
    for ip in addrs:
        check_address(ip, policy, url)
    return addrs[0]


def _target(url: str, policy: FetchPolicy) -> tuple[httpx.URL, str, IPAddress]:
    """Check the URL's scheme and host; return the pinned URL (host replaced by the checked address), the
    original host name and the address."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as e:
        raise FetchRefused(f"'{safe_url(url)}' is not a valid URL: {e}.") from None
    if parsed.scheme not in ("http", "https"):
        raise FetchRefused(f"Refusing to fetch '{safe_url(url)}': only http and https URLs may be fetched "
                           f"(not '{parsed.scheme or '(none)'}').")
    host = parsed.host
    if not host:
        raise FetchRefused(f"'{safe_url(url)}' has no host.")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    ip = resolve(host, port, policy, url)
    return parsed.copy_with(host=str(ip), port=port), host, ip


def _open(client: httpx.Client, url: str, policy: FetchPolicy, deadline: float) -> httpx.Response:
    """GET ``url``, following up to ``MAX_REDIRECTS`` redirects, each to a checked address."""
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        pinned, host, _ip = _target(current, policy)
        original = httpx.URL(current)
        host_header = host if ":" not in host else f"[{host}]"
        if original.port:
            host_header += f":{original.port}"
        remaining = max(1.0, deadline - time.monotonic())
        request = client.build_request(
            "GET", pinned, headers={"Host": host_header},
            extensions={"sni_hostname": host, "timeout": httpx.Timeout(min(60.0, remaining)).as_dict()})
        response = client.send(request, stream=True)
        if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
            response.close()
            current = urljoin(current, response.headers["location"])
            continue
        return response
    raise DownloadFailed(f"Fetching '{safe_url(url)}' was redirected more than {MAX_REDIRECTS} times.")


def download(url: str, dest: Path, *, sha256: str | None = None, policy: FetchPolicy) -> Path:
    """Download ``url`` to ``dest`` under ``policy`` (see the module doc); return ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.part"
    deadline = time.monotonic() + policy.timeout
    digest = hashlib.sha256()
    written = 0
    try:
        with httpx.Client(follow_redirects=False, trust_env=False, timeout=60.0) as client:
            try:
                response = _open(client, url, policy, deadline)
                try:
                    if response.status_code != 200:
                        raise DownloadFailed(f"GET '{safe_url(url)}' answered {response.status_code}.")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > policy.max_bytes:
                        raise DownloadFailed(f"'{safe_url(url)}' is {declared} bytes, more than the limit of "
                                             f"{policy.max_bytes}.")
                    with open(tmp, "wb") as f:
                        for chunk in response.iter_bytes(_CHUNK):
                            written += len(chunk)
                            if written > policy.max_bytes:
                                raise DownloadFailed(f"'{safe_url(url)}' is larger than the limit of "
                                                     f"{policy.max_bytes} bytes.")
                            if time.monotonic() > deadline:
                                raise DownloadFailed(f"Downloading '{safe_url(url)}' took longer than "
                                                     f"{policy.timeout:.0f} s.")
                            digest.update(chunk)
                            f.write(chunk)
                        f.flush()
                        os.fsync(f.fileno())
                finally:
                    response.close()
            except httpx.HTTPError as e:
                raise DownloadFailed(f"Downloading '{safe_url(url)}' failed: {type(e).__name__}: "
                                     f"{safe_url(str(e)) if str(e).startswith('http') else e}.") from None
        check_sha256(digest.hexdigest(), sha256, url)
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)
