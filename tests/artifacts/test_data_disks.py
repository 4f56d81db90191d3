"""Data disks of artifacts (a build's additionalDataDisks) and a source's purchase plan, without a VM: stored and
reference-counted blobs, what Compute reads (dataDisks, dataDiskImages, purchasePlan), a version made from an
image sharing its data disks, deletes freeing them, the start-up sweep counting them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.artifacts.conftest import MIB, RG, SUB, make_raw
from vmforge.artifacts import Artifacts, render
from vmforge.artifacts.errors import InvalidParameter
from vmforge.disk import qemuimg
from vmforge.store.artifact_models import ArtifactBlob

IMG = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/images"
DEF = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/galleries/gal/images/def"


def qcow2_of(raw: Path) -> Path:
    out = raw.with_suffix(".qcow2")
    qemuimg.convert(raw, out, "qcow2", src_fmt="raw")
    return out


@pytest.fixture
def disks(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An OS disk and two data disks of different contents and sizes (qcow2, as a build leaves them)."""
    return (qcow2_of(make_raw(tmp_path / "os.raw", 8 * MIB, seed=1)),
            qcow2_of(make_raw(tmp_path / "d0.raw", 4 * MIB, seed=2)),
            qcow2_of(make_raw(tmp_path / "d1.raw", 1024 * MIB + 2 * MIB, seed=3)))


def definition(artifacts: Artifacts, **props: object) -> None:
    artifacts.galleries.put_gallery(SUB, RG, "gal", {"location": "westus"})
    artifacts.galleries.put_definition(SUB, RG, "gal", "def", {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V1",
        "identifier": {"publisher": "p", "offer": "o", "sku": "s"}, **props}})


def refcount(artifacts: Artifacts, digest: str) -> int | None:
    with artifacts.db.session() as s:
        blob = s.get(ArtifactBlob, digest)
        return None if blob is None else blob.refcount


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_managed_image_keeps_its_data_disks_in_lun_order(artifacts: Artifacts, disks) -> None:  # noqa: ANN001
    os_disk, d0, d1 = disks
    row = artifacts.register_managed_image(os_disk, f"{IMG}/img", location="westus", data_disks=[d0, d1])
    stored = artifacts.open_data_disks(f"{IMG}/img")
    assert len(stored) == 2
    # Each stored disk holds what the build's disk held, LUN 0 first.
    back = d0.parent / "back.raw"
    qemuimg.convert(stored[0], back, "raw", src_fmt="qcow2")
    assert sha(back) == sha(d0.with_suffix(".raw"))
    assert qemuimg.info(stored[1], "qcow2")["virtual-size"] == 1024 * MIB + 2 * MIB
    body = render.image(row, 8 * MIB)
    data = body["properties"]["storageProfile"]["dataDisks"]
    assert [d["lun"] for d in data] == [0, 1]
    assert [d["diskSizeGB"] for d in data] == [1, 2]  # whole GiB, rounded up
    assert [Path(d["blobUri"].removeprefix("file://")) for d in data] == stored
    # The OS disk is not one of them.
    assert artifacts.open_image(f"{IMG}/img") not in stored


def test_deleting_the_image_frees_its_data_disks(artifacts: Artifacts, disks) -> None:  # noqa: ANN001
    os_disk, d0, d1 = disks
    artifacts.register_managed_image(os_disk, f"{IMG}/img", location="westus", data_disks=[d0, d1])
    stored = artifacts.open_data_disks(f"{IMG}/img")
    digests = [p.stem for p in stored]
    assert [refcount(artifacts, d) for d in digests] == [1, 1]
    artifacts.images.delete(SUB, RG, "img")
    assert [refcount(artifacts, d) for d in digests] == [None, None]
    assert not any(p.exists() for p in stored)


def test_gallery_version_lists_data_disk_images_and_shares_an_images_disks(artifacts: Artifacts,
                                                                            disks) -> None:  # noqa: ANN001
    os_disk, d0, d1 = disks
    definition(artifacts)
    artifacts.register_managed_image(os_disk, f"{IMG}/img", location="westus", data_disks=[d0, d1])
    # A build's version: staged from the build's files.
    built = artifacts.create_gallery_version(f"{DEF}/versions/1.0.0", location="westus", source_id=f"{IMG}/img",
                                             path=os_disk, data_disks=[d1])
    row, regions = artifacts.versions.get(SUB, RG, "gal", "def", "1.0.0")
    body = render.version(row, regions, "gal", "def", 8 * MIB)
    assert body["properties"]["storageProfile"]["dataDiskImages"] == [{"lun": 0, "sizeInGB": 2, "hostCaching": "None"}]
    assert built.id == row.id
    # A version made through the Compute API from the image shares the image's data disks (no copy).
    artifacts.versions.put(SUB, RG, "gal", "def", "1.0.1", {"location": "westus", "properties": {
        "storageProfile": {"source": {"id": f"{IMG}/img"}}}})
    from_image = artifacts.open_data_disks(f"{DEF}/versions/1.0.1")
    assert from_image == artifacts.open_data_disks(f"{IMG}/img")
    assert [refcount(artifacts, p.stem) for p in from_image] == [2, 3]  # d1 is also 1.0.0's LUN 0
    row, regions = artifacts.versions.get(SUB, RG, "gal", "def", "1.0.1")
    assert [d["lun"] for d in render.version(row, regions, "gal", "def", 8 * MIB)["properties"]["storageProfile"][
        "dataDiskImages"]] == [0, 1]
    # An update of the version keeps what it has, whatever the body says about data disks.
    artifacts.versions.put(SUB, RG, "gal", "def", "1.0.1", {"location": "westus", "tags": {"a": "b"}, "properties": {
        "storageProfile": {"source": {"id": f"{IMG}/img"}, "dataDiskImages": [{"lun": 7}]}}})
    row, _ = artifacts.versions.get(SUB, RG, "gal", "def", "1.0.1")
    assert [d["lun"] for d in row.properties["storageProfile"]["dataDiskImages"]] == [0, 1]
    # Deletes release their references; the last one frees the file.
    artifacts.versions.delete(SUB, RG, "gal", "def", "1.0.1")
    artifacts.images.delete(SUB, RG, "img")
    assert refcount(artifacts, from_image[0].stem) is None and not from_image[0].exists()
    assert refcount(artifacts, from_image[1].stem) == 1 and from_image[1].exists()


def test_sweep_counts_data_disk_references(artifacts: Artifacts, disks) -> None:  # noqa: ANN001
    os_disk, d0, _ = disks
    artifacts.register_managed_image(os_disk, f"{IMG}/img", location="westus", data_disks=[d0])
    (stored,) = artifacts.open_data_disks(f"{IMG}/img")
    with artifacts.db.session() as s:
        s.get(ArtifactBlob, stored.stem).refcount = 5
    stats = artifacts.sweep()
    assert stats["repaired"] == 1 and stats["orphans"] == 0
    assert stored.exists() and refcount(artifacts, stored.stem) == 1


def test_plan_is_recorded_on_a_definition_without_one(artifacts: Artifacts) -> None:
    definition(artifacts)
    plan = {"planName": "n", "planProduct": "prod", "planPublisher": "pub"}
    assert "recorded" in artifacts.purchase_plan(DEF, plan)
    d = artifacts.galleries.get_definition(SUB, RG, "gal", "def")
    assert render.definition(d, "gal")["properties"]["purchasePlan"] == {"name": "n", "product": "prod",
                                                                         "publisher": "pub"}
    # The same plan again (ARM compares case-insensitively) is fine; no plan changes nothing.
    assert "already" in artifacts.purchase_plan(f"{DEF}/versions/1.0.0", {k: v.upper() for k, v in plan.items()})
    assert artifacts.purchase_plan(DEF, None) == ""


def test_a_definition_with_another_plan_is_refused(artifacts: Artifacts) -> None:
    definition(artifacts, purchasePlan={"name": "other", "product": "prod", "publisher": "pub"})
    with pytest.raises(InvalidParameter) as e:
        artifacts.purchase_plan(DEF, {"planName": "n", "planProduct": "prod", "planPublisher": "pub"})
    assert e.value.status == 400 and e.value.code == "PurchasePlanMismatch"
    assert "pub/prod/other" in e.value.message and "pub/prod/n" in e.value.message
    d = artifacts.galleries.get_definition(SUB, RG, "gal", "def")
    assert d.properties["purchasePlan"]["name"] == "other"


def build_ctx(artifacts: Artifacts, tmp: Path, os_disk: Path, data: list[Path], plan: dict | None):  # noqa: ANN201
    from vmforge.events import RunEvents
    from vmforge.kinds.base import Context

    source = {"type": "PlatformImage", "publisher": "p", "offer": "o", "sku": "s", "version": "1.0.0"}
    if plan:
        source["planInfo"] = plan
    ctx = Context(run_id=3, work_dir=tmp, data_dir=tmp, events=RunEvents(tmp / "log"),
                  template={"source": source}, template_name="tpl", template_location="westus",
                  cancel_requested=lambda: False, fetch=lambda url, sha: tmp, artifacts=artifacts)
    ctx.state.update(image_path=os_disk, data_disks=data, source_version="1.0.0")
    return ctx


def test_distributors_hand_on_the_data_disks_and_the_plan(artifacts: Artifacts, disks, tmp_path: Path) -> None:  # noqa: ANN001
    from vmforge.kinds.distributors.managed_image import ManagedImageStep
    from vmforge.kinds.distributors.shared_image import SharedImageStep

    os_disk, d0, d1 = disks
    definition(artifacts)
    plan = {"planName": "n", "planProduct": "prod", "planPublisher": "pub"}
    ctx = build_ctx(artifacts, tmp_path, os_disk, [d0, d1], plan)
    ManagedImageStep("img", {"runOutputName": "img", "imageId": f"{IMG}/built", "location": "westus"}).run(ctx)
    SharedImageStep("sig", {"runOutputName": "sig", "galleryImageId": DEF}).run(ctx)
    assert len(artifacts.open_data_disks(f"{IMG}/built")) == 2
    version = ctx.outputs["sig"]["artifact_id"]
    assert artifacts.open_data_disks(version) == artifacts.open_data_disks(f"{IMG}/built")  # same bytes: one file each
    row, _ = artifacts.versions.get(SUB, RG, "gal", "def", version.rsplit("/", 1)[1])
    assert [d["lun"] for d in row.properties["storageProfile"]["dataDiskImages"]] == [0, 1]
    assert artifacts.galleries.get_definition(SUB, RG, "gal", "def").properties["purchasePlan"]["name"] == "n"
    assert "recorded on the image definition" in (tmp_path / "log").read_text()
    # Another plan: that distributor fails, and makes no version.
    other = build_ctx(artifacts, tmp_path, os_disk, [], {**plan, "planName": "m"})
    with pytest.raises(InvalidParameter, match="differs from the template's source.planInfo"):
        SharedImageStep("sig", {"runOutputName": "sig", "galleryImageId": DEF}).run(other)
    assert len(artifacts.versions.list(SUB, RG, "gal", "def")) == 1
