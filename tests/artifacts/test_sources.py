"""blobUris over http(s) go through vmforge.fetch (the one download module): refused by default on loopback,
allowed by an operator CIDR, checked against a sha256, checked as a disk image; the errors are vmforge.fetch's,
carry the request field as target and name the URL without its query string; nothing is left behind."""

from __future__ import annotations

import functools
import hashlib
import http.server
import ipaddress
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.artifacts.conftest import MIB, RG, SUB, make_raw, random_file
from vmforge import fetch
from vmforge.artifacts import Artifacts
from vmforge.artifacts.errors import BadImageFormat
from vmforge.artifacts.platform import Urn
from vmforge.artifacts.sources import IMAGE_MAX_BYTES, SourcePolicy

BLOB_URI = "properties.storageProfile.osDisk.blobUri"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", root
    srv.shutdown()
    srv.server_close()


def body(uri: str) -> dict:
    return {"location": "westus", "properties": {"storageProfile": {"osDisk": {
        "osType": "Linux", "osState": "Generalized", "blobUri": uri}}}}


def test_one_policy_class(artifacts: Artifacts) -> None:
    assert isinstance(artifacts.policy, SourcePolicy)
    assert isinstance(artifacts.policy.fetch, fetch.FetchPolicy) and artifacts.policy.fetch.max_bytes == IMAGE_MAX_BYTES


def test_http_blob_uris(artifacts: Artifacts, served: tuple[str, Path]) -> None:
    base, root = served
    disk = make_raw(root / "disk.img", 4 * MIB)
    random_file(root / "junk.vhd")
    with pytest.raises(fetch.FetchRefused) as refused:  # loopback: not without the operator's CIDR
        artifacts.images.put(SUB, RG, "a", body(f"{base}/disk.img?sig=SECRET"))
    assert refused.value.target == BLOB_URI and "SECRET" not in refused.value.message
    artifacts.policy.fetch.allow_cidrs = [ipaddress.ip_network("127.0.0.0/8")]
    row, created, _ = artifacts.images.put(SUB, RG, "a", body(f"{base}/disk.img?sig=SECRET"))
    assert created and row.blob_digest
    with pytest.raises(BadImageFormat) as bad:
        artifacts.images.put(SUB, RG, "b", body(f"{base}/junk.vhd?sig=SECRET"))
    assert bad.value.target == BLOB_URI and f"'{base}/junk.vhd'" in bad.value.message
    assert "SECRET" not in bad.value.message
    with pytest.raises(fetch.DownloadFailed) as missing:
        artifacts.images.put(SUB, RG, "c", body(f"{base}/missing.img"))
    assert missing.value.code == "DownloadFailed" and missing.value.target == BLOB_URI
    with pytest.raises(fetch.ChecksumMismatch) as mismatch:
        artifacts.platform.register_uri(Urn.parse("P:o:s:1.0.0"), f"{base}/disk.img", sha256="0" * 64,
                                        target="properties.blobUri")
    assert mismatch.value.target == "properties.blobUri"
    digest = hashlib.sha256(disk.read_bytes()).hexdigest().upper()  # any case
    assert artifacts.platform.register_uri(Urn.parse("P:o:s:1.0.0"), f"{base}/disk.img", sha256=digest).version \
        == "1.0.0"
    assert [r.name for r in artifacts.images.list(SUB)] == ["a"]
    assert list(artifacts.blobs.tmp.iterdir()) == []


def test_file_checksum_is_the_same_error(artifacts: Artifacts, imports: Path) -> None:
    disk = make_raw(imports / "d.img", 4 * MIB)
    with pytest.raises(fetch.ChecksumMismatch) as e:
        artifacts.platform.register_uri(Urn.parse("P:o:s:1.0.0"), disk.as_uri(), sha256="f" * 64, target="t")
    assert e.value.target == "t" and disk.as_uri() in e.value.message and e.value.status == 400
    assert artifacts.platform.list_all() == []
