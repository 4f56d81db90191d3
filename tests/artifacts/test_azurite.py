"""A fixed VHD through Azure Blob Storage as a page blob (Azurite on loopback), byte for byte; and a blobUri
read from that account with its key."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.artifacts.conftest import MIB, make_raw
from tests.conftest import REPO, free_port, missing_dependency
from vmforge.artifacts import Artifacts
from vmforge.artifacts.formats import is_azure_fixed_vhd
from vmforge.artifacts.vhdstore import AzureBlobVhdStore, DirectoryVhdStore
from vmforge.service import groups

# Azurite's well-known development account (public, documented; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_binary() -> str | None:
    for cand in (os.environ.get("VMFORGE_AZURITE"), shutil.which("azurite-blob"),
                 str(REPO / "tools" / "node_modules" / ".bin" / "azurite-blob")):
        if cand and Path(cand).exists():
            return cand
    return None


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = azurite_binary()
    if binary is None:
        missing_dependency("azurite is not installed (npm install azurite; or set VMFORGE_AZURITE)")
    port = free_port()
    work = tmp_path_factory.mktemp("azurite")
    log = open(work / "azurite.log", "wb")
    proc = subprocess.Popen([binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                             "--skipApiVersionCheck", "--silent"], cwd=work,
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((work / "azurite.log").read_text()[-2000:]) from None
                time.sleep(0.1)
        yield (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_fixed_vhd_page_blob_round_trip(azurite: str, artifacts: Artifacts, raw_image: Path, tmp_path: Path) -> None:
    vhd = artifacts.export(raw_image, "vhd", tmp_path / "disk.vhd")
    assert is_azure_fixed_vhd(vhd)
    store = AzureBlobVhdStore(azurite)
    uri = store.put(vhd, "vhds", "builds/disk.vhd")
    assert uri.endswith(f"/{DEV_ACCOUNT}/vhds/builds/disk.vhd")
    from azure.storage.blob import BlobClient

    props = BlobClient.from_connection_string(azurite, "vhds", "builds/disk.vhd").get_blob_properties()
    assert props.blob_type == "PageBlob" and props.size == vhd.stat().st_size
    back = store.get(uri, tmp_path / "back.vhd")
    assert sha(back) == sha(vhd)


def test_blob_uri_import_with_account_key(azurite: str, data_dir: Path, db, raw_image: Path,  # noqa: ANN001
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMFORGE_BLOB_CONNECTION_STRING", azurite)
    arts = Artifacts(db, data_dir, [data_dir / "imports"], durable=False)
    groups.ensure(db, "sub", "rg", "westus")
    vhd = arts.export(raw_image, "vhd", data_dir / "x.vhd")
    uri = AzureBlobVhdStore(azurite).put(vhd, "sources", "x.vhd")
    row, created, _ = arts.images.put("sub", "rg", "fromblob", {"location": "westus", "properties": {
        "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized", "blobUri": uri}}}})
    assert created
    assert sha(arts.export(f"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/images/fromblob",
                           "raw", data_dir / "back.raw")) == sha(raw_image)


def test_directory_store(tmp_path: Path) -> None:
    src = make_raw(tmp_path / "a.raw", 2 * MIB)
    store = DirectoryVhdStore(tmp_path / "vhds")
    uri = store.put(src, "outputs", "a.vhd")
    assert uri.startswith("file://") and sha(store.get(uri, tmp_path / "b")) == sha(src)
