"""Microsoft.Compute images, galleries, image definitions and versions driven through Microsoft's own client,
azure-mgmt-compute 39 (its default api-versions: 2026-04-01 for images, 2026-03-03 for galleries), against a
real vmforge server over HTTPS, with a VHD imported from a file:// blobUri under an import root; and what is not
a disk image (random bytes named .vhd or .img) refused with a CloudError, nothing stored."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.artifacts.conftest import make_ext4, make_gpt, make_raw, random_file, write_mbr
from tests.conftest import SUBSCRIPTION, Server, StaticToken, free_port

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def imports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("imports")
    raw = d / "disk.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), str(64 * MIB)], check=True)
    with open(raw, "r+b") as f:
        f.write(b"\xeb\x63\x90vmforge" + bytes(range(256)) * 64)
        f.seek(40 * MIB)
        f.write(b"data" * 100_000)
    write_mbr(raw, 64 * MIB)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size",
                    str(raw), str(d / "disk.vhd")], check=True)
    return d


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, imports: Path) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("vmforge-compute") / "data", free_port(), ["--import-root", str(imports)])
    s.start()
    for group in ("rg", "rg-bad", "rgw"):  # the fixed groups the tests below put into
        s.ensure_group(SUBSCRIPTION, group)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(srv: Server):  # noqa: ANN201
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(StaticToken(srv.token), SUBSCRIPTION, base_url=srv.url,
                                   connection_verify=srv.cert, polling_interval=0.05, retry_total=0)


def new_group(srv: Server) -> str:
    name = f"rg-{uuid.uuid4().hex[:6]}"
    srv.ensure_group(SUBSCRIPTION, name)
    return name


def image_body(uri: str) -> dict:
    return {"location": "westus", "tags": {"team": "images"}, "properties": {
        "hyperVGeneration": "V2",
        "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized", "blobUri": uri}}}}


def test_image_from_vhd_get_list_delete(client, srv: Server, imports: Path) -> None:  # noqa: ANN001
    rg = new_group(srv)
    img = client.images.begin_create_or_update(rg, "img1", image_body((imports / "disk.vhd").as_uri())).result()
    assert img.name == "img1" and img.provisioning_state == "Succeeded"
    assert img.storage_profile.os_disk.os_type == "Linux"
    assert img.storage_profile.os_disk.disk_size_gb == 1
    assert img.hyper_v_generation == "V2" and img.tags == {"team": "images"}
    got = client.images.get(rg, "IMG1")
    assert got.id == f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.Compute/images/img1"
    assert [i.name for i in client.images.list_by_resource_group(rg)] == ["img1"]
    assert "img1" in [i.name for i in client.images.list()]
    client.images.begin_delete(rg, "img1").result()
    with pytest.raises(ResourceNotFoundError):
        client.images.get(rg, "img1")
    client.images.begin_delete(rg, "img1").result()  # 204: already gone


def test_bad_sources_are_4xx(client, imports: Path, tmp_path: Path) -> None:  # noqa: ANN001
    outside = tmp_path / "x.raw"
    outside.write_bytes(b"\0" * 1024)
    with pytest.raises(HttpResponseError) as e:
        client.images.begin_create_or_update("rg", "bad", image_body(outside.as_uri())).result()
    assert e.value.status_code == 403 and e.value.error.code == "ImportPathNotAllowed"
    (imports / "bad.txt").write_text("not a disk")
    with pytest.raises(HttpResponseError) as e:
        client.images.begin_create_or_update("rg", "bad", image_body((imports / "bad.txt").as_uri())).result()
    assert e.value.status_code == 400 and e.value.error.code == "InvalidImage"
    with pytest.raises(ResourceNotFoundError):
        client.images.get("rg", "bad")


def stored_files(srv: Server) -> list[Path]:
    """Every file of the server's blob store (stored disks and temporary ones), but its lock file."""
    root = srv.data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".lock")


@pytest.mark.parametrize("name", ["random.vhd", "random.img"])
def test_what_is_not_a_disk_image_is_refused(client, srv: Server, imports: Path, name: str) -> None:  # noqa: ANN001
    """64 KiB of random bytes is no disk: named .vhd it has no VHD footer; named .img (raw) it has neither a
    partition table nor a file system. Azure refuses such a blob; so does vmforge, and stores nothing."""
    src = random_file(imports / name)
    uri = src.as_uri() + "?sv=2024&sig=SECRET"
    before = stored_files(srv)
    with pytest.raises(HttpResponseError) as e:
        client.images.begin_create_or_update("rg-bad", "notadisk", image_body(uri)).result()
    err = e.value.error
    assert e.value.status_code == 400 and err.code == "BadImageFormat", err
    assert err.target == "properties.storageProfile.osDisk.blobUri"
    assert src.as_uri() in err.message and "SECRET" not in err.message and "sig=" not in err.message
    assert ("VHD footer" if name.endswith(".vhd") else "partition table") in err.message
    with pytest.raises(ResourceNotFoundError):
        client.images.get("rg-bad", "notadisk")
    assert stored_files(srv) == before


def test_platform_import_refuses_what_is_not_a_disk_image(srv: Server, imports: Path) -> None:
    src = random_file(imports / "platform.vhd", seed=8)
    url = (f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/westus/publishers/Bad/artifacttypes"
           "/vmimage/offers/o/skus/s/versions/1.0.0")
    before = stored_files(srv)
    with srv.http() as http:
        r = http.put(url, params={"api-version": "2026-04-01"}, json={"properties": {"blobUri": src.as_uri()}})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "BadImageFormat" and error["target"] == "properties.blobUri"
        assert src.as_uri() in error["message"]
        assert http.get(url, params={"api-version": "2026-04-01"}).status_code == 404
    assert stored_files(srv) == before


@pytest.mark.parametrize("kind", ["qcow2", "raw-mbr", "raw-gpt", "ext4", "vhd-fixed"])
def test_real_disk_images_are_accepted(client, srv: Server, imports: Path, kind: str) -> None:  # noqa: ANN001
    path = imports / f"ok-{kind}.{'vhd' if kind == 'vhd-fixed' else 'img'}"
    if kind == "raw-gpt":
        make_gpt(path)
    elif kind == "ext4":
        make_ext4(path)
    else:
        make_raw(path, 8 * MIB)
        if kind in ("qcow2", "vhd-fixed"):
            fmt, opts = ("qcow2", []) if kind == "qcow2" else ("vpc", ["-o", "subformat=fixed,force_size"])
            conv = path.with_suffix(".conv")
            subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt, *opts, str(path), str(conv)],
                           check=True)
            conv.replace(path)
    rg = new_group(srv)
    img = client.images.begin_create_or_update(rg, "ok", image_body(path.as_uri())).result()
    assert img.provisioning_state == "Succeeded"
    client.images.begin_delete(rg, "ok").result()


def test_gallery_definition_versions(client, srv: Server, imports: Path) -> None:  # noqa: ANN001
    rg = new_group(srv)
    src = client.images.begin_create_or_update(rg, "base", image_body((imports / "disk.vhd").as_uri())).result()
    with pytest.raises(ResourceNotFoundError) as e:  # no gallery yet
        client.gallery_images.begin_create_or_update(rg, "gal", "ubuntu", {"location": "westus", "properties": {
            "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
            "identifier": {"publisher": "me", "offer": "o", "sku": "s"}}}).result()
    assert e.value.error.code == "ParentResourceNotFound"
    gal = client.galleries.begin_create_or_update(rg, "gal", {"location": "westus",
                                                              "properties": {"description": "test"}}).result()
    assert gal.identifier.unique_name.endswith("-GAL") and gal.description == "test"
    d = client.gallery_images.begin_create_or_update(rg, "gal", "ubuntu", {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
        "identifier": {"publisher": "me", "offer": "o", "sku": "s"}}}).result()
    assert d.identifier.publisher == "me" and d.os_type == "Linux"
    for name, exclude in (("1.0.0", False), ("1.0.10", False), ("2.0.0", True)):
        ver = client.gallery_image_versions.begin_create_or_update(rg, "gal", "ubuntu", name, {
            "location": "westus", "properties": {
                "publishingProfile": {"excludeFromLatest": exclude, "replicaCount": 2,
                                      "targetRegions": [{"name": "westus"}, {"name": "East US",
                                                                             "regionalReplicaCount": 3}]},
                "storageProfile": {"source": {"id": src.id}}}}).result()
        assert ver.provisioning_state == "Succeeded"
        assert [(r.name, r.regional_replica_count) for r in ver.publishing_profile.target_regions] == [
            ("westus", 2), ("East US", 3)]
    names = [v.name for v in client.gallery_image_versions.list_by_gallery_image(rg, "gal", "ubuntu")]
    assert names == ["1.0.0", "1.0.10", "2.0.0"]
    got = client.gallery_image_versions.get(rg, "gal", "ubuntu", "1.0.10", expand="ReplicationStatus")
    assert got.replication_status.aggregated_state == "Completed"
    assert got.storage_profile.source.id == src.id
    with pytest.raises(ResourceNotFoundError):
        client.gallery_image_versions.get(rg, "gal", "ubuntu", "9.9.9")
    with pytest.raises(ResourceNotFoundError) as e:
        client.gallery_image_versions.begin_create_or_update(rg, "gal", "nope", "1.0.0", {
            "location": "westus", "properties": {"storageProfile": {"source": {"id": src.id}}}}).result()
    assert e.value.error.code == "ParentResourceNotFound"
    with pytest.raises(HttpResponseError) as e:  # a gallery with definitions cannot go
        client.galleries.begin_delete(rg, "gal").result()
    assert e.value.status_code == 409
    # The source image can go: its disk stays, shared by the versions.
    client.images.begin_delete(rg, "base").result()
    for name in names:
        client.gallery_image_versions.begin_delete(rg, "gal", "ubuntu", name).result()
    assert list(client.gallery_image_versions.list_by_gallery_image(rg, "gal", "ubuntu")) == []
    client.gallery_images.begin_delete(rg, "gal", "ubuntu").result()
    client.galleries.begin_delete(rg, "gal").result()
    with pytest.raises(ResourceNotFoundError):
        client.galleries.get(rg, "gal")


def test_wire_details(srv: Server, imports: Path) -> None:
    url = f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rgw/providers/microsoft.compute/IMAGES/w1"
    with srv.http() as http:
        r = http.put(url, params={"api-version": "2026-04-01"}, json=image_body((imports / "disk.vhd").as_uri()))
        assert r.status_code == 201, r.text
        op_url = r.headers["Azure-AsyncOperation"]
        assert op_url.startswith(srv.url + f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/westus/")
        assert http.get(op_url).json()["status"] == "Succeeded"
        r = http.put(url, params={"api-version": "2026-04-01"}, json=image_body((imports / "disk.vhd").as_uri()))
        assert r.status_code == 200  # same source again: no re-import
        r = http.get(url, params={"api-version": "2019-01-01"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidApiVersionParameter"
        r = http.delete(url, params={"api-version": "2024-03-01"})
        assert r.status_code == 202 and "Location" in r.headers
        assert http.get(r.headers["Location"]).status_code == 204
    with httpx.Client(base_url=srv.url, verify=srv.cert) as anon:
        assert anon.get(url, params={"api-version": "2026-04-01"}).status_code == 401


def test_platform_images(srv: Server, client, imports: Path) -> None:  # noqa: ANN001
    base = (f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/westus/publishers/Contoso"
            "/artifacttypes/vmimage/offers/linux/skus/gen2/versions")
    with srv.http() as http:
        for v in ("1.0.9", "1.0.10"):
            r = http.put(f"{base}/{v}", params={"api-version": "2026-04-01"},
                         json={"properties": {"blobUri": (imports / "disk.vhd").as_uri(), "osType": "Linux"}})
            assert r.status_code == 201, r.text
        r = http.put(f"{base}/2.0.0", params={"api-version": "2026-04-01"},
                     json={"properties": {"blobUri": (imports / "disk.vhd").as_uri(), "sha256": "0" * 64}})
        assert r.status_code == 400 and r.json()["error"]["code"] == "ChecksumMismatch"
    assert [i.name for i in client.virtual_machine_images.list("westus", "contoso", "linux", "gen2")] == [
        "1.0.9", "1.0.10"]
    latest = client.virtual_machine_images.get("westus", "Contoso", "linux", "gen2", "latest")
    assert latest.name == "1.0.10" and latest.os_disk_image.operating_system == "Linux"
    assert [p.name for p in client.virtual_machine_images.list_publishers("westus")] == ["Contoso"]
    assert [s.name for s in client.virtual_machine_images.list_skus("westus", "Contoso", "linux")] == ["gen2"]
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_images.get("westus", "Contoso", "linux", "gen3", "latest")


def test_cli_import_and_list(tmp_path: Path, imports: Path) -> None:
    import json
    import sys

    dd = tmp_path / "data"
    cmd = [sys.executable, "-m", "vmforge.cli", "image"]
    out = subprocess.run([*cmd, "import", str(imports / "disk.vhd"), "--platform", "A:b:c:1.2.3", "--data-dir",
                          str(dd)], capture_output=True, text=True, check=True).stdout
    assert out.startswith("A:b:c:1.2.3  sha256:")
    listed = json.loads(subprocess.run([*cmd, "list", "--json", "--data-dir", str(dd)], capture_output=True,
                                       text=True, check=True).stdout)
    assert listed[0]["name"] == "A:b:c:1.2.3" and listed[0]["kind"] == "platform"
    bad = subprocess.run([*cmd, "import", str(imports / "disk.vhd"), "--platform", "not-a-urn", "--data-dir",
                          str(dd)], capture_output=True, text=True)
    assert bad.returncode == 1 and "error:" in bad.stderr
