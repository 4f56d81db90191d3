"""The outbound fetch guard (vmforge.fetch): loopback, metadata, private and non-http URLs are refused, a
redirect from an allowed server to a forbidden address is refused, a checksum mismatch leaves nothing."""

from __future__ import annotations

import hashlib
import http.server
import ipaddress
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmforge import fetch
from vmforge.fetch import ChecksumMismatch, DownloadFailed, FetchPolicy, FetchRefused, download

PAYLOAD = b"vmforge payload\n" * 1000


class Handler(http.server.BaseHTTPRequestHandler):
    redirect_to = ""

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        if self.path.startswith("/loop"):
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


DEFAULT = FetchPolicy()
LOOPBACK_ALLOWED = FetchPolicy(allow_cidrs=[ipaddress.ip_network("127.0.0.1/32")])


@pytest.mark.parametrize("url,words", [
    ("http://127.0.0.1/x", "loopback"),
    ("http://localhost:8443/x", "loopback"),
    ("http://169.254.169.254/metadata/instance?api-version=2021-02-01", "link-local"),
    ("http://[::1]:8080/x", "loopback"),
    ("http://10.1.2.3/x", "private"),
    ("http://192.168.0.1/x", "private"),
    ("http://172.16.5.4/x", "private"),
    ("http://100.64.0.1/x", "CGNAT"),
    ("http://[fd00::1]/x", "private"),
    ("http://[fe80::1]/x", "link-local"),
    ("http://0.0.0.0/x", "unspecified"),
    ("http://[::ffff:127.0.0.1]/x", "loopback"),
    ("http://224.0.0.1/x", "multicast"),
    ("file:///etc/passwd", "only http and https"),
    ("ftp://example.org/x", "only http and https"),
    ("gopher://127.0.0.1/x", "only http and https"),
])
def test_forbidden_targets_are_refused(tmp_path: Path, url: str, words: str) -> None:
    dest = tmp_path / "out"
    with pytest.raises(FetchRefused) as e:
        download(url, dest, policy=DEFAULT)
    assert words in e.value.message and e.value.status == 400 and e.value.code == "FetchRefused"
    assert "?" not in e.value.message  # no query string (SAS tokens) in errors
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_allow_listed_loopback_downloads(tmp_path: Path, local: str) -> None:
    dest = tmp_path / "sub" / "file.bin"
    digest = hashlib.sha256(PAYLOAD).hexdigest().upper()  # any case
    assert download(local + "/file?sig=secret", dest, sha256=digest, policy=LOOPBACK_ALLOWED) == dest
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]


def test_redirect_to_a_forbidden_address_is_refused(tmp_path: Path, local: str) -> None:
    for target in ("http://127.0.0.2:9/secret", "http://[::1]:9/x", "http://169.254.169.254/latest/meta-data/",
                   "file:///etc/shadow"):
        Handler.redirect_to = target
        dest = tmp_path / "out"
        with pytest.raises(FetchRefused) as e:
            download(local + "/redirect", dest, policy=LOOPBACK_ALLOWED)
        assert "Refusing" in e.value.message
        assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_redirect_loops_and_sizes_are_bounded(tmp_path: Path, local: str) -> None:
    with pytest.raises(DownloadFailed, match="redirected more than 5"):
        download(local + "/loop", tmp_path / "o", policy=LOOPBACK_ALLOWED)
    small = FetchPolicy(allow_cidrs=LOOPBACK_ALLOWED.allow_cidrs, max_bytes=1000)
    with pytest.raises(DownloadFailed, match="limit"):
        download(local + "/big", tmp_path / "o", policy=small)
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_leaves_no_file(tmp_path: Path, local: str) -> None:
    dest = tmp_path / "file"
    with pytest.raises(ChecksumMismatch) as e:
        download(local + "/file?se=2030&sig=abc", dest, sha256="0" * 64, policy=LOOPBACK_ALLOWED)
    assert "sig=" not in e.value.message and e.value.code == "ChecksumMismatch"
    assert list(tmp_path.iterdir()) == []


def test_dns_is_resolved_once_and_pinned(tmp_path: Path, local: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name resolving to an allowed address is fetched from that address (a later resolution that would
    answer a forbidden one is never made)."""
    port = int(local.rsplit(":", 1)[1])
    calls: list[str] = []
    real = fetch.socket.getaddrinfo

    def fake_getaddrinfo(host: str, *a: object, **k: object) -> list:
        try:
            ipaddress.ip_address(host)
            return real(host, *a, **k)  # an address literal: no DNS
        except ValueError:
            pass
        calls.append(host)
        if len(calls) > 1:
            return [(2, 1, 6, "", ("169.254.169.254", port))]
        return [(2, 1, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(fetch.socket, "getaddrinfo", fake_getaddrinfo)
    dest = download(f"http://files.example.test:{port}/f", tmp_path / "f", policy=LOOPBACK_ALLOWED)
    assert dest.read_bytes() == PAYLOAD and calls == ["files.example.test"]


def test_policy_from_settings() -> None:
    from vmforge.settings import Settings

    p = fetch.policy_from_settings(Settings(allow_fetch_from=["10.0.0.0/8", "::1"]))
    assert ipaddress.ip_address("10.9.9.9") in p.allow_cidrs[0] and p.max_bytes == 2 * 1024**3
