"""The content-addressed store: formats in, atomic placement, reference counts, the start-up sweep."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.artifacts.conftest import MIB, RG, SUB, ImageMaker, file_uri, make_raw
from vmforge.artifacts import Artifacts
from vmforge.artifacts.errors import ImportPathForbidden, InvalidImage, InvalidParameter, UnsupportedImageFormat
from vmforge.errors import ValidationFailed
from vmforge.store.artifact_models import ArtifactBlob



def image_body(uri: str, **disk: object) -> dict:
    return {"location": "westus", "properties": {"storageProfile": {"osDisk": {
        "osType": "Linux", "osState": "Generalized", "blobUri": uri, **disk}}}}


def blob_files(a: Artifacts) -> list[Path]:
    return sorted(a.blobs.objects.glob("*/*.qcow2"))


def raw_bytes_of(path: Path, tmp: Path) -> bytes:
    out = tmp / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(path), str(out)], check=True)
    return hashlib.sha256(out.read_bytes()).digest()


@pytest.mark.parametrize("kind", ["raw", "qcow2", "vhdx", "vhd-dynamic", "vhd-fixed"])
def test_every_input_format_stores_the_same_disk(artifacts: Artifacts, image_in: ImageMaker, raw_image: Path,
                                                 kind: str, tmp_path: Path) -> None:
    src = image_in(kind)
    row, created, op = artifacts.images.put(SUB, RG, f"img-{kind}", image_body(file_uri(src)))
    assert created and op.status == "Succeeded"
    stored = artifacts.open_image(f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/images/"
                                  f"img-{kind}")
    assert stored.name == f"{row.blob_digest}.qcow2"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == row.blob_digest
    assert raw_bytes_of(stored, tmp_path) == hashlib.sha256(raw_image.read_bytes()).digest()


def test_refcount_two_resources_share_one_file(artifacts: Artifacts, raw_image: Path, image_in: ImageMaker) -> None:
    a, _, _ = artifacts.images.put(SUB, RG, "a", image_body(file_uri(raw_image)))
    b, _, _ = artifacts.images.put(SUB, RG, "b", image_body(file_uri(image_in("vhd-fixed"))))  # same bytes
    assert a.blob_digest == b.blob_digest
    files = blob_files(artifacts)
    assert len(files) == 1
    with artifacts.db.session() as s:
        assert s.get(ArtifactBlob, a.blob_digest).refcount == 2
    assert artifacts.images.delete(SUB, RG, "a") is not None
    assert files[0].exists()
    with artifacts.db.session() as s:
        assert s.get(ArtifactBlob, a.blob_digest).refcount == 1
    artifacts.images.delete(SUB, RG, "b")
    assert not files[0].exists()
    with artifacts.db.session() as s:
        assert s.get(ArtifactBlob, a.blob_digest) is None
    assert artifacts.images.delete(SUB, RG, "b") is None  # already gone: 204


def test_copy_of_an_image_shares_its_file(artifacts: Artifacts, raw_image: Path) -> None:
    a, _, _ = artifacts.images.put(SUB, RG, "a", image_body(file_uri(raw_image)))
    src_id = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/images/A"
    body = {"location": "westus", "properties": {"storageProfile": {"osDisk": {
        "osType": "Linux", "osState": "Generalized", "managedDisk": {"id": src_id}}}}}
    b, _, _ = artifacts.images.put(SUB, RG, "b", body)
    assert b.blob_digest == a.blob_digest
    artifacts.images.delete(SUB, RG, "a")
    assert artifacts.open_image(src_id.replace("/A", "/b")).exists()


def test_bad_inputs_store_nothing(artifacts: Artifacts, imports: Path, tmp_path: Path, raw_image: Path) -> None:
    outside = make_raw(tmp_path / "outside.img", 4 * MIB)
    with pytest.raises(ImportPathForbidden) as e:
        artifacts.images.put(SUB, RG, "x", image_body(file_uri(outside)))
    assert e.value.status == 403
    # A symlink inside the root that points outside is outside.
    (imports / "link.img").symlink_to(outside)
    with pytest.raises(ImportPathForbidden):
        artifacts.images.put(SUB, RG, "x", image_body(file_uri(imports / "link.img")))
    with pytest.raises(InvalidParameter):
        artifacts.images.put(SUB, RG, "x", image_body(file_uri(imports / "missing.img")))
    (imports / "notes.txt").write_text("hello")
    with pytest.raises(InvalidImage):  # not a whole number of sectors
        artifacts.images.put(SUB, RG, "x", image_body(file_uri(imports / "notes.txt")))
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(imports / "d.vmdk"), "8M"], check=True)
    with pytest.raises(UnsupportedImageFormat) as e2:
        artifacts.images.put(SUB, RG, "x", image_body(file_uri(imports / "d.vmdk")))
    assert "vmdk" in e2.value.message
    subprocess.run(["gzip", "-k", str(raw_image)], check=True)
    with pytest.raises(UnsupportedImageFormat):
        artifacts.images.put(SUB, RG, "x", image_body(file_uri(imports / "disk.img.gz")))
    # A qcow2 whose header is intact but whose tables are cut off.
    q = imports / "cut.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw_image), str(q)], check=True)
    with open(q, "r+b") as f:
        f.truncate(q.stat().st_size // 3)
    with pytest.raises(InvalidImage):
        artifacts.images.put(SUB, RG, "x", image_body(file_uri(q)))
    # A qcow2 with a backing file (it would read another host file).
    ov = imports / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(outside), str(ov)], check=True)
    with pytest.raises(InvalidImage):
        artifacts.images.put(SUB, RG, "x", image_body(file_uri(ov)))
    with pytest.raises(ValidationFailed) as e3:
        artifacts.images.put(SUB, RG, "x", {"location": "westus", "properties": {"storageProfile": {
            "osDisk": {"osType": "Plan9", "blobUri": file_uri(raw_image)}}}})
    assert {d.target for d in e3.value.details} == {"properties.storageProfile.osDisk.osType",
                                                   "properties.storageProfile.osDisk.osState"}
    assert artifacts.images.list(SUB) == []
    assert blob_files(artifacts) == []
    assert list(artifacts.blobs.tmp.iterdir()) == []


def test_sweep_removes_orphans_and_repairs_counts(artifacts: Artifacts, raw_image: Path) -> None:
    row, _, _ = artifacts.images.put(SUB, RG, "a", image_body(file_uri(raw_image)))
    orphan = artifacts.blobs.path("ab" * 32)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x")
    with artifacts.db.session() as s:
        s.get(ArtifactBlob, row.blob_digest).refcount = 7
    stats = artifacts.sweep()
    assert stats["orphans"] == 1 and stats["repaired"] == 1 and stats["missing"] == 0
    assert not orphan.exists()
    assert artifacts.blobs.path(row.blob_digest).exists()
    with artifacts.db.session() as s:
        assert s.get(ArtifactBlob, row.blob_digest).refcount == 1
