"""The build engine's API: galleries/versions at the service level, source resolution, export, the catalog."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.artifacts.conftest import RG, SUB, ImageMaker, file_uri
from vmforge.artifacts import Artifacts
from vmforge.artifacts.errors import ParentNotFound
from vmforge.artifacts.formats import MIB, is_azure_fixed_vhd, read_vhd_footer
from vmforge.artifacts.platform import Urn
from vmforge.errors import NotFound
from vmforge.fetch import ChecksumMismatch

P = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute"


def _definition(a: Artifacts) -> None:
    a.galleries.put_gallery(SUB, RG, "gal", {"location": "westus"})
    a.galleries.put_definition(SUB, RG, "gal", "def", {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
        "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}})


def test_versions_latest_and_numbering(artifacts: Artifacts, raw_image: Path) -> None:
    with pytest.raises(ParentNotFound):
        artifacts.galleries.put_definition(SUB, RG, "gal", "def", {"location": "westus", "properties": {
            "osType": "Linux", "osState": "Generalized", "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}})
    _definition(artifacts)
    img = artifacts.register_managed_image(raw_image, f"{P}/images/base", location="westus",
                                           hyper_v_generation="V2")  # as the definition
    for name, exclude in (("1.0.0", False), ("1.2.0", False), ("3.0.0", True)):
        artifacts.create_gallery_version(f"{P}/galleries/gal/images/def/versions/{name}", location="westus",
                                         source_id=f"{P}/images/base", exclude_from_latest=exclude)
    src = artifacts.resolve_source({"type": "SharedImageVersion",
                                    "imageVersionId": f"{P}/galleries/gal/images/def/versions/latest"})
    assert src.exact_version == f"{P}/galleries/gal/images/def/versions/1.2.0"
    assert src.path == artifacts.blobs.path(img.blob_digest)
    gid = f"{P}/galleries/gal/images/def"
    assert artifacts.next_version(gid) == "3.0.1"
    assert artifacts.next_version(gid, {"scheme": "Latest", "major": 1}) == "1.2.1"
    assert artifacts.next_version(gid, {"scheme": "Source"}, source_version="5.0.0") == "5.0.0"
    with pytest.raises(NotFound):
        artifacts.resolve_source({"type": "SharedImageVersion", "imageVersionId": f"{gid}/versions/9.9.9"})


def test_version_from_build_output_and_export_fixed_vhd(artifacts: Artifacts, image_in: ImageMaker,
                                                        raw_image: Path, tmp_path: Path) -> None:
    _definition(artifacts)
    vid = f"{P}/galleries/gal/images/def/versions/0.0.1"
    artifacts.create_gallery_version(vid, location="westus", source_id="/build/output", path=image_in("qcow2"),
                                     target_regions=[{"name": "westus"}, {"name": "northeurope"}])
    vhd = artifacts.export(vid, "vhd", tmp_path / "out" / "disk.vhd")
    assert is_azure_fixed_vhd(vhd)
    assert read_vhd_footer(vhd).current_size == 64 * MIB
    raw = artifacts.export(vid, "raw", tmp_path / "disk.raw")
    assert hashlib.sha256(raw.read_bytes()).digest() == hashlib.sha256(raw_image.read_bytes()).digest()


def test_fixed_vhd_export_rounds_up_to_a_mib(artifacts: Artifacts, imports: Path, tmp_path: Path) -> None:
    odd = imports / "odd.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(odd), str(5 * MIB + 512)], check=True)
    out = artifacts.export(odd, "vhd", tmp_path / "odd.vhd")
    assert is_azure_fixed_vhd(out) and out.stat().st_size == 6 * MIB + 512


def test_platform_catalog_latest_and_url_catalog(artifacts: Artifacts, raw_image: Path, image_in: ImageMaker,
                                                 data_dir: Path) -> None:
    artifacts.platform.register(Urn.parse("Canonical:ubuntu:22_04-lts:22.04.202401010"), raw_image)
    artifacts.platform.register(Urn.parse("Canonical:ubuntu:22_04-lts:22.04.202312010"), image_in("vhdx"))
    src = artifacts.resolve_source({"type": "PlatformImage", "publisher": "canonical", "offer": "Ubuntu",
                                    "sku": "22_04-LTS", "version": "latest"})
    assert src.exact_version == "22.04.202401010" and src.os_type == "Linux"
    with pytest.raises(NotFound):
        artifacts.resolve_source({"type": "PlatformImage", "publisher": "x", "offer": "y", "sku": "z",
                                  "version": "latest"})
    # A catalog file maps URNs to URLs + sha256: fetched once, verified, registered.
    q = image_in("qcow2")
    digest = hashlib.sha256(q.read_bytes()).hexdigest()
    artifacts.platform.catalog_file = data_dir / "catalog.json"
    artifacts.platform.catalog_file.write_text(json.dumps({
        "Debian:debian-12:12:0.20240101.1": {"url": file_uri(q), "sha256": digest},
        "Debian:debian-12:12:0.20230101.1": {"url": file_uri(q), "sha256": "0" * 64}}))
    got = artifacts.resolve_source({"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12",
                                    "sku": "12", "version": "latest"})
    assert got.exact_version == "0.20240101.1"
    assert len(artifacts.platform.list_versions("debian", "DEBIAN-12", "12")) == 1
    with pytest.raises(ChecksumMismatch):
        artifacts.platform.resolve(Urn.parse("Debian:debian-12:12:0.20230101.1"))


def test_nothing_is_created_in_a_missing_group(artifacts: Artifacts, raw_image: Path) -> None:
    """Images (imported or a build's output), galleries, definitions and versions need their group: 404
    ResourceGroupNotFound before any import, nothing stored."""
    from vmforge.errors import ArmError
    from vmforge.store.artifact_models import ArtifactBlob

    missing = "rg-missing"
    p = f"/subscriptions/{SUB}/resourceGroups/{missing}/providers/Microsoft.Compute"
    definition = {"location": "westus", "properties": {"osType": "Linux", "osState": "Generalized",
                                                       "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}
    attempts = [
        lambda: artifacts.images.put(SUB, missing, "img", {"location": "westus", "properties": {"storageProfile": {
            "osDisk": {"osType": "Linux", "osState": "Generalized", "blobUri": file_uri(raw_image)}}}}),
        lambda: artifacts.register_managed_image(raw_image, f"{p}/images/built", location="westus"),
        lambda: artifacts.galleries.put_gallery(SUB, missing, "gal", {"location": "westus"}),
        lambda: artifacts.galleries.put_definition(SUB, missing, "gal", "def", definition),
        lambda: artifacts.create_gallery_version(f"{p}/galleries/gal/images/def/versions/1.0.0", location="westus",
                                                 source_id=f"{p}/images/img", path=raw_image),
    ]
    for attempt in attempts:
        with pytest.raises(ArmError) as e:
            attempt()
        assert (e.value.status, e.value.code) == (404, "ResourceGroupNotFound")
    assert artifacts.images.list(SUB) == [] and artifacts.galleries.list_galleries(SUB) == []
    with artifacts.db.read() as s:
        assert s.query(ArtifactBlob).count() == 0
    assert list(artifacts.blobs.objects.glob("*/*.qcow2")) == []
