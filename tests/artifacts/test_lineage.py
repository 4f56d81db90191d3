"""Lineage and revocation in the store (``vmforge.artifacts.lineage``): the rows a run's distribution writes, the
tags, the chain up and the tree down, cascade, idempotence, the audit trail, ``latest`` skipping revoked
versions, a run refused on a revoked source, and an artifact made again under a revoked one's id."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.artifacts.conftest import RG, SUB
from vmforge.artifacts import Artifacts
from vmforge.artifacts import lineage as L
from vmforge.errors import ArmError, NotFound

P = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute"
GID = f"{P}/galleries/gal/images/def"
URN = {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"}
ADMIN = L.Caller("oid-admin", "admin@vmforge")


def _definition(a: Artifacts) -> None:
    a.galleries.put_gallery(SUB, RG, "gal", {"location": "westus"})
    a.galleries.put_definition(SUB, RG, "gal", "def", {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V1",
        "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}})


def _run(template: str, run_id: int, source_kind: str, source_ref: str) -> L.RunLineage:
    tid = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.VirtualMachineImages/imageTemplates/{template}"
    return L.RunLineage(tid, run_id, 3, L.template_sha256({"t": template}), source_kind, source_ref)


def _version(a: Artifacts, raw: Path, name: str, info: L.RunLineage) -> str:
    vid = f"{GID}/versions/{name}"
    a.create_gallery_version(vid, location="westus", source_id="/build", path=raw)
    L.record(a.db, info, "sig", "SharedImage", {"artifact_id": vid})
    return vid


@pytest.fixture
def family(artifacts: Artifacts, raw_image: Path) -> dict[str, str]:
    """Generation A (from a platform URN): a managed image and versions 1.0.0, 1.0.1 of one run each;
    generation B (from A's 1.0.1): a managed image and a VHD; generation C (from B's image): version 2.0.0."""
    _definition(artifacts)
    a_run = _run("a", 1, "PlatformImage", "Debian:debian-12:12:0.20261201.1")
    artifacts.register_managed_image(raw_image, f"{P}/images/a-img", location="westus")
    L.record(artifacts.db, a_run, "img", "ManagedImage", {"artifact_id": f"{P}/images/a-img"})
    v100 = _version(artifacts, raw_image, "1.0.0", a_run)
    v101 = _version(artifacts, raw_image, "1.0.1", _run("a", 2, "PlatformImage", "Debian:debian-12:12:0.20261201.1"))
    b_run = _run("b", 3, "SharedImageVersion", v101)
    artifacts.register_managed_image(raw_image, f"{P}/images/b-img", location="westus")
    L.record(artifacts.db, b_run, "img", "ManagedImage", {"artifact_id": f"{P}/images/b-img"})
    L.record(artifacts.db, b_run, "vhd", "VHD", {"artifact_uri": "file:///vhds/b.vhd"})
    v200 = _version(artifacts, raw_image, "2.0.0", _run("c", 4, "ManagedImage", f"{P}/images/b-img"))
    return {"a-img": f"{P}/images/a-img", "1.0.0": v100, "1.0.1": v101, "b-img": f"{P}/images/b-img", "2.0.0": v200}


def test_lineage_rows_tags_chain_and_tree(artifacts: Artifacts, family: dict[str, str]) -> None:
    img = artifacts.images.get(SUB, RG, "b-img")
    assert img.tags[L.TAG_RUN] == "3"
    assert img.tags[L.TAG_SOURCE] == family["1.0.1"]
    assert img.tags[L.TAG_TEMPLATE].endswith("/imageTemplates/b")
    assert img.tags[L.TAG_REVISION] == f"v3 sha256:{L.template_sha256({'t': 'b'})}"
    assert all(len(v) <= 256 for v in img.tags.values())

    got = L.lineage(artifacts.db, family["2.0.0"])
    assert got["artifact"]["run"]["runId"] == 4 and got["artifact"]["source"]["id"] == family["b-img"]
    assert [n["id"] for n in got["ancestors"]] == [family["b-img"], family["1.0.1"], "Debian:debian-12:12:0.20261201.1"]
    assert got["ancestors"][-1]["kind"] == "PlatformImage"

    down = L.lineage(artifacts.db, family["1.0.1"])["descendants"]
    assert sorted(n["id"] for n in down) == sorted([family["b-img"], "file:///vhds/b.vhd"])
    b = next(n for n in down if n["id"] == family["b-img"])
    assert [n["id"] for n in b["children"]] == [family["2.0.0"]]
    # 1.0.0 is a sibling generation, not a parent: nothing descends from it.
    assert L.lineage(artifacts.db, family["1.0.0"])["descendants"] == []


def test_long_tag_values_stay_valid() -> None:
    long = "/subscriptions/" + "x" * 400 + "/versions/1.2.3"
    v = L.tag_value(long)
    assert len(v) == 256 and v.endswith("/versions/1.2.3") and v.startswith("…")
    assert L.tag_value("short") == "short"


def test_lineage_tags_never_push_an_artifact_past_50_tags(artifacts: Artifacts, raw_image: Path) -> None:
    own = {f"t{i}": "v" for i in (range(48))}
    artifacts.register_managed_image(raw_image, f"{P}/images/tagged", location="westus", tags=own)
    L.record(artifacts.db, _run("a", 9, "PlatformImage", "p:o:s:1"), "img", "ManagedImage",
             {"artifact_id": f"{P}/images/tagged"})
    assert artifacts.images.get(SUB, RG, "tagged").tags == own
    assert L.lineage(artifacts.db, f"{P}/images/tagged")["artifact"]["run"]["runId"] == 9  # still recorded


def test_revoke_cascades_is_idempotent_and_audited(artifacts: Artifacts, family: dict[str, str]) -> None:
    out = L.revoke(artifacts.db, family["1.0.1"], ADMIN, "CVE-2026-0001 in openssl", cascade=True)
    assert sorted(out.changed) == sorted([family["1.0.1"], family["b-img"], "file:///vhds/b.vhd", family["2.0.0"]])
    assert out.unchanged == []
    assert L.lineage(artifacts.db, family["a-img"])["artifact"]["revoked"] is False  # not a descendant
    top = L.lineage(artifacts.db, family["1.0.1"])
    rev = top["artifact"]["revocation"]
    assert rev["revokedBy"] == {"objectId": "oid-admin", "name": "admin@vmforge"}
    assert rev["reason"] == "CVE-2026-0001 in openssl" and rev["cascadedFrom"] is None
    grandchild = L.lineage(artifacts.db, family["2.0.0"])["artifact"]["revocation"]
    assert grandchild["cascadedFrom"] == family["1.0.1"]
    tag = artifacts.images.get(SUB, RG, "b-img").tags[L.TAG_REVOKED]
    assert "admin@vmforge" in tag and "CVE-2026-0001" in tag

    again = L.revoke(artifacts.db, family["1.0.1"], L.Caller("oid-other", "other"), "second opinion", cascade=True)
    assert again.changed == [] and len(again.unchanged) == 4
    assert L.lineage(artifacts.db, family["1.0.1"])["artifact"]["revocation"] == rev  # the first one stays
    assert [h["action"] for h in top["history"]] == ["revoke"]

    back = L.unrevoke(artifacts.db, family["1.0.1"], ADMIN, "false alarm", cascade=True)
    assert sorted(back.changed) == sorted(out.changed)
    hist = L.lineage(artifacts.db, family["1.0.1"])["history"]
    assert [(h["action"], h["reason"]) for h in hist] == [("revoke", "CVE-2026-0001 in openssl"),
                                                          ("unrevoke", "false alarm")]
    assert L.TAG_REVOKED not in artifacts.images.get(SUB, RG, "b-img").tags


def test_an_artifact_built_during_a_cascading_revocation_is_revoked_as_it_appears(
        artifacts: Artifacts, raw_image: Path, family: dict[str, str]) -> None:
    """A run past its source check when the source is revoked with cascade: what it distributes is revoked at
    once (as if it had existed); without cascade it is not."""
    L.revoke(artifacts.db, family["1.0.1"], ADMIN, "bad base", cascade=True)
    artifacts.register_managed_image(raw_image, f"{P}/images/late", location="westus")
    L.record(artifacts.db, _run("b", 7, "ManagedImage", family["b-img"]), "img", "ManagedImage",
             {"artifact_id": f"{P}/images/late"})
    node = L.lineage(artifacts.db, f"{P}/images/late")["artifact"]
    assert node["revoked"] and node["revocation"]["reason"] == "bad base"
    assert node["revocation"]["cascadedFrom"] == family["1.0.1"]
    assert "bad base" in artifacts.images.get(SUB, RG, "late").tags[L.TAG_REVOKED]
    assert artifacts.images.get(SUB, RG, "late").tags[L.TAG_RUN] == "7"

    L.revoke(artifacts.db, family["a-img"], ADMIN, "just this one")  # no cascade
    artifacts.register_managed_image(raw_image, f"{P}/images/late2", location="westus")
    L.record(artifacts.db, _run("d", 8, "ManagedImage", family["a-img"]), "img", "ManagedImage",
             {"artifact_id": f"{P}/images/late2"})
    assert L.lineage(artifacts.db, f"{P}/images/late2")["artifact"]["revoked"] is False


def test_cascade_is_all_or_nothing(artifacts: Artifacts, family: dict[str, str]) -> None:
    with pytest.raises(ArmError) as e:
        L.revoke(artifacts.db, family["1.0.1"], ADMIN, "bad", cascade=True,
                 may_write=lambda rid: rid != family["2.0.0"])
    assert e.value.status == 403 and e.value.code == "LinkedAuthorizationFailed"
    assert L.lineage(artifacts.db, family["1.0.1"])["artifact"]["revoked"] is False


def test_latest_skips_revoked_and_runs_refuse_a_revoked_source(artifacts: Artifacts, family: dict[str, str]) -> None:
    latest = {"type": "SharedImageVersion", "imageVersionId": f"{GID}/versions/latest"}
    assert artifacts.resolve_source(latest).exact_version == family["2.0.0"]
    L.revoke(artifacts.db, family["1.0.1"], ADMIN, "bad base", cascade=True)  # 1.0.1 and (via b-img) 2.0.0
    assert artifacts.resolve_source(latest).exact_version == family["1.0.0"]
    assert artifacts.versions.get(SUB, RG, "gal", "def", "latest")[0].name == "1.0.0"
    # A revoked artifact is not deleted: it reads as before, by its own name.
    assert artifacts.versions.get(SUB, RG, "gal", "def", "2.0.0")[0].name == "2.0.0"

    exact = {"type": "SharedImageVersion", "imageVersionId": family["2.0.0"]}
    start = L.begin(artifacts.db, 999, exact, artifacts.resolve_source(exact))
    assert start.refusal and "was revoked" in start.refusal and "bad base" in start.refusal
    assert family["1.0.1"] in start.refusal  # names the ancestor the revocation came from
    managed = {"type": "ManagedImage", "imageId": family["b-img"].upper().replace("SUBSCRIPTIONS", "subscriptions")}
    assert "bad base" in (L.begin(artifacts.db, 999, managed, artifacts.resolve_source(managed)).refusal or "")
    fine = {"type": "ManagedImage", "imageId": family["a-img"]}
    assert L.begin(artifacts.db, 999, fine, artifacts.resolve_source(fine)).refusal is None

    L.revoke(artifacts.db, family["1.0.0"], ADMIN, "also bad")
    with pytest.raises(NotFound):  # every version revoked: latest names none
        artifacts.resolve_source(latest)


def test_ancestor_revoked_without_cascade_warns(artifacts: Artifacts, family: dict[str, str]) -> None:
    L.revoke(artifacts.db, family["1.0.1"], ADMIN, "bad base")  # no cascade: b-img stays usable
    src = {"type": "ManagedImage", "imageId": family["b-img"]}
    start = L.begin(artifacts.db, 999, src, artifacts.resolve_source(src))
    assert start.refusal is None
    assert start.warning and family["1.0.1"] in start.warning and "bad base" in start.warning


def test_an_artifact_made_again_under_a_revoked_id_is_not_revoked(artifacts: Artifacts, raw_image: Path,
                                                                  family: dict[str, str]) -> None:
    L.revoke(artifacts.db, family["a-img"], ADMIN, "bad")
    artifacts.images.delete(SUB, RG, "a-img")
    artifacts.register_managed_image(raw_image, family["a-img"], location="westus")
    got = L.lineage(artifacts.db, family["a-img"])
    assert got["artifact"]["revoked"] is False and got["artifact"]["run"] is None


def test_external_artifact_can_be_revoked_and_bad_ids_are_refused(artifacts: Artifacts, raw_image: Path) -> None:
    artifacts.register_managed_image(raw_image, f"{P}/images/imported", location="westus")
    out = L.revoke(artifacts.db, f"{P}/images/imported", ADMIN, "untrusted upload")
    assert out.changed == [f"{P}/images/imported"]
    node = L.lineage(artifacts.db, f"{P}/images/imported")["artifact"]
    assert node["revoked"] and node["run"] is None and node["source"] is None
    with pytest.raises(NotFound):
        L.lineage(artifacts.db, f"{P}/images/nope")
    with pytest.raises(ArmError) as e:
        L.revoke(artifacts.db, f"{P}/galleries/gal", ADMIN, "x")
    assert e.value.status == 400
    for bad in ("", "   ", None, 5):
        with pytest.raises(ArmError) as e:
            L.revoke(artifacts.db, f"{P}/images/imported", ADMIN, bad)  # type: ignore[arg-type]
        assert e.value.status == 400 and e.value.target == "reason"
