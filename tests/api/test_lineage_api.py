"""The lineage extension on the wire: ``{artifact}/providers/Vmforge/lineage|revoke|unrevoke`` over HTTPS, the
lineage tags through azure-mgmt-compute, ``vmforge lineage|revoke|unrevoke`` through the CLI, RBAC (a Reader
reads but cannot revoke; cascade needs write on every descendant), ARM errors for bad input, and a run whose
source is revoked failing before any VM (through azure-mgmt-imagebuilder).

No build runs here: the parent/child rows a run's distribution writes are written with the executor's own
function (``vmforge.artifacts.lineage.record``) into the server's database; the slow test
(tests/e2e/test_lineage_slow.py) makes them with real builds."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError

from tests.artifacts.conftest import write_mbr
from tests.cli.conftest import invoke
from tests.conftest import SUBSCRIPTION, Server, StaticToken, free_port, imagebuilder_client
from tests.identity.helpers import client as http_as, principal
from vmforge.artifacts import lineage as L
from vmforge.store.db import Database

MIB = 1024 * 1024
API = {"api-version": "2025-10-01"}
RG = "lin"
P = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute"
DEF = f"{P}/galleries/gal/images/deb"


@pytest.fixture(scope="module")
def imports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("imports")
    raw = d / "disk.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), str(64 * MIB)], check=True)
    with open(raw, "r+b") as f:
        f.write(b"\xeb\x63\x90vmforge" + bytes(range(256)) * 64)
    write_mbr(raw, 64 * MIB)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size",
                    str(raw), str(d / "disk.vhd")], check=True)
    return d


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, imports: Path) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("vmforge-lineage") / "data", free_port(), ["--import-root", str(imports)])
    s.start()
    for group in (RG, "lin-other"):
        s.ensure_group(SUBSCRIPTION, group)
    yield s
    s.stop()


def compute(srv: Server):  # noqa: ANN201
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(StaticToken(srv.token), SUBSCRIPTION, base_url=srv.url,
                                   connection_verify=srv.cert, polling_interval=0.05, retry_total=0)


def _image(cc, group: str, name: str, imports: Path) -> str:  # noqa: ANN001
    return cc.images.begin_create_or_update(group, name, {"location": "westus", "properties": {
        "hyperVGeneration": "V1", "storageProfile": {"osDisk": {
            "osType": "Linux", "osState": "Generalized", "blobUri": (imports / "disk.vhd").as_uri()}}}}).result().id


def _run_info(template: str, run_id: int, kind: str, ref: str) -> L.RunLineage:
    tid = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.VirtualMachineImages/"
           f"imageTemplates/{template}")
    return L.RunLineage(tid, run_id, 1, L.template_sha256({"name": template}), kind, ref)


@pytest.fixture(scope="module")
def family(srv: Server, imports: Path) -> dict[str, str]:
    """base (uploaded) → versions 1.0.0 and 1.0.1 (runs 1, 2 of template a) → image child (run 3 of b, from 1.0.1)
    → image grandchild in another group (run 4 of c, from child)."""
    cc = compute(srv)
    base = _image(cc, RG, "base", imports)
    cc.galleries.begin_create_or_update(RG, "gal", {"location": "westus"}).result()
    cc.gallery_images.begin_create_or_update(RG, "gal", "deb", {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V1",
        "identifier": {"publisher": "vmforge", "offer": "deb", "sku": "12"}}}).result()
    for name in ("1.0.0", "1.0.1"):
        cc.gallery_image_versions.begin_create_or_update(RG, "gal", "deb", name, {
            "location": "westus", "properties": {"storageProfile": {"source": {"id": base}}}}).result()
    child = _image(cc, RG, "child", imports)
    grandchild = _image(cc, "lin-other", "grandchild", imports)
    db = Database(f"sqlite:///{srv.data_dir / 'vmforge.db'}")
    try:
        L.record(db, _run_info("a", 1, "ManagedImage", base), "sig", "SharedImage", {"artifact_id": f"{DEF}/versions/1.0.0"})
        L.record(db, _run_info("a", 2, "ManagedImage", base), "sig", "SharedImage", {"artifact_id": f"{DEF}/versions/1.0.1"})
        L.record(db, _run_info("b", 3, "SharedImageVersion", f"{DEF}/versions/1.0.1"), "img", "ManagedImage",
                 {"artifact_id": child})
        L.record(db, _run_info("c", 4, "ManagedImage", child), "img", "ManagedImage", {"artifact_id": grandchild})
    finally:
        db.dispose()
    return {"base": base, "1.0.0": f"{DEF}/versions/1.0.0", "1.0.1": f"{DEF}/versions/1.0.1", "child": child,
            "grandchild": grandchild}


def _cli(srv: Server, *args: str, env: dict[str, str] | None = None):  # noqa: ANN202
    return invoke(list(args), {"VMFORGE_HOME": str(srv.data_dir), "VMFORGE_SUBSCRIPTION": SUBSCRIPTION, **(env or {})})


def test_lineage_route_and_tags_through_the_compute_sdk(srv: Server, family: dict[str, str]) -> None:
    cc = compute(srv)
    tags = cc.images.get(RG, "child").tags
    assert tags["vmforge.run"] == "3" and tags["vmforge.source"] == family["1.0.1"]
    assert tags["vmforge.template"].endswith("/imageTemplates/b") and tags["vmforge.templateRevision"].startswith("v1 ")
    assert cc.gallery_image_versions.get(RG, "gal", "deb", "1.0.1").tags["vmforge.source"] == family["base"]
    with srv.http() as h:
        r = h.get(family["grandchild"] + "/providers/Vmforge/lineage", params=API)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["type"] == "Vmforge/lineage" and body["id"] == family["grandchild"] + "/providers/Vmforge/lineage"
        p = body["properties"]
        assert p["artifact"]["run"]["runId"] == 4
        assert [n["id"] for n in p["ancestors"]] == [family["child"], family["1.0.1"], family["base"]]
        assert p["ancestors"][-1]["run"] is None  # an upload: its origin is unknown, the chain ends there
        r = h.get(family["base"] + "/providers/Vmforge/lineage", params=API)
        down = r.json()["properties"]["descendants"]
        assert sorted(n["id"] for n in down) == [family["1.0.0"], family["1.0.1"]]
        v101 = next(n for n in down if n["id"] == family["1.0.1"])
        assert [n["id"] for n in v101["children"]] == [family["child"]]
        assert [n["id"] for n in v101["children"][0]["children"]] == [family["grandchild"]]


def test_reader_reads_but_cannot_revoke_and_others_are_hidden(srv: Server, family: dict[str, str]) -> None:
    reader = principal(srv, "Reader", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}")
    with http_as(srv, reader["token"]) as h:
        r = h.get(family["base"] + "/providers/Vmforge/lineage", params=API)
        assert r.status_code == 200, r.text
        v101 = next(n for n in r.json()["properties"]["descendants"] if n.get("id") == family["1.0.1"])
        hidden = v101["children"][0]["children"][0]  # the grandchild is in a group the reader may not read
        assert hidden == {"id": None, "hidden": True, "revoked": None, "children": []}
        r = h.post(family["child"] + "/providers/Vmforge/revoke", params=API, json={"reason": "nope"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed"
        r = h.get(family["grandchild"] + "/providers/Vmforge/lineage", params=API)
        assert r.status_code == 403
    with http_as(srv, None) as h:
        assert h.get(family["base"] + "/providers/Vmforge/lineage", params=API).status_code == 401
    # Contributor of the parent's group only: a cascade reaching the other group is refused whole.
    contributor = principal(srv, "Contributor", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}")
    with http_as(srv, contributor["token"]) as h:
        r = h.post(family["child"] + "/providers/Vmforge/revoke", params=API, json={"reason": "x", "cascade": True})
        assert r.status_code == 403, r.text
        err = r.json()["error"]
        assert err["code"] == "LinkedAuthorizationFailed" and err["target"] == family["grandchild"]
        r = h.get(family["child"] + "/providers/Vmforge/lineage", params=API)
        assert r.json()["properties"]["artifact"]["revoked"] is False  # nothing changed


def test_bad_input_gets_arm_errors(srv: Server, family: dict[str, str]) -> None:
    cases = [
        ("GET", f"{P}/galleries/gal/providers/Vmforge/lineage", API, None, 400, "InvalidResourceId"),
        ("GET", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Network/x/y/providers/Vmforge/"
                "lineage", API, None, 400, "InvalidResourceId"),
        ("GET", f"{P}/images/missing/providers/Vmforge/lineage", API, None, 404, "ResourceNotFound"),
        ("GET", f"{DEF}/versions/9.9.9/providers/Vmforge/lineage", API, None, 404, "ResourceNotFound"),
        ("GET", family["child"] + "/providers/Vmforge/lineage", {}, None, 400, "MissingApiVersionParameter"),
        ("GET", family["child"] + "/providers/Vmforge/lineage", {"api-version": "2020-01-01"}, None, 400,
         "InvalidApiVersionParameter"),
        ("POST", f"{P}/images/missing/providers/Vmforge/revoke", API, {"reason": "x"}, 404, "ResourceNotFound"),
        ("POST", family["child"] + "/providers/Vmforge/revoke", API, {}, 400, "InvalidParameter"),
        ("POST", f"{DEF}/versions/latest/providers/Vmforge/revoke", API, {"reason": "x"}, 400, "InvalidParameter"),
        ("POST", f"{DEF}/versions/latest/providers/Vmforge/unrevoke", API, {}, 400, "InvalidParameter"),
        ("POST", family["child"] + "/providers/Vmforge/revoke", API, {"reason": "  "}, 400, "InvalidParameter"),
        ("POST", family["child"] + "/providers/Vmforge/revoke", API, {"reason": "x", "cascade": "yes"}, 400,
         "InvalidParameter"),
        ("POST", family["child"] + "/providers/Vmforge/revoke", API, {"reason": "x", "why": 1}, 400,
         "InvalidRequestContent"),
        ("POST", family["child"] + "/providers/Vmforge/revoke", API, ["x"], 400, "InvalidRequestContent"),
        ("POST", family["child"] + "/providers/Vmforge/revoke", API, {"reason": "x" * 1001}, 400, "InvalidParameter"),
    ]
    with srv.http() as h:
        for method, path, params, body, status, code in cases:
            r = h.request(method, path, params=params, json=body)
            assert r.status_code == status, (path, body, r.text)
            err = r.json()["error"]
            assert err["code"] == code and err["message"] and set(err) >= {"code", "message", "target", "details"}
        r = h.post(family["child"] + "/providers/Vmforge/revoke", params=API, content=b"{not json",
                   headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidRequestContent"
        r = h.get(family["child"] + "/providers/Vmforge/lineage", params=API)
        assert r.json()["properties"]["artifact"]["revoked"] is False  # nothing of the above revoked anything
        r = h.get(f"{DEF}/versions/latest/providers/Vmforge/lineage", params=API)  # reading latest is fine
        assert r.status_code == 200 and not r.json()["properties"]["artifact"]["revoked"]


def test_cli_revoke_cascade_lineage_latest_and_unrevoke(srv: Server, family: dict[str, str]) -> None:
    cc = compute(srv)
    assert cc.gallery_image_versions.get(RG, "gal", "deb", "latest").name == "1.0.1"
    r = _cli(srv, "revoke", "galleries/gal/images/deb/versions/1.0.1", "-g", RG, "--cascade", "--reason",
             "CVE-2026-4242 in the base")
    assert r.exit_code == 0, r.stderr
    revoked = sorted(line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("revoked: "))
    assert revoked == sorted([family["1.0.1"], family["child"], family["grandchild"]])
    # Visible on the artifacts (tags), and latest moved back to the newest good version.
    assert "CVE-2026-4242" in cc.images.get("lin-other", "grandchild").tags["vmforge.revoked"]
    assert cc.gallery_image_versions.get(RG, "gal", "deb", "latest").name == "1.0.0"
    assert cc.gallery_image_versions.get(RG, "gal", "deb", "1.0.1").name == "1.0.1"  # not deleted

    r = _cli(srv, "lineage", family["child"])
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert family["child"] in out and family["1.0.1"] in out and family["base"] in out
    assert "REVOKED" in out and "CVE-2026-4242 in the base" in out and family["grandchild"] in out
    assert f"with its ancestor {family['1.0.1']}" in out  # the child's revocation came with its parent's
    assert "origin unknown" in out  # base: an upload

    r = _cli(srv, "revoke", family["1.0.1"], "--reason", "again")  # idempotent: the first revocation stays
    assert r.exit_code == 0 and f"already revoked (unchanged): {family['1.0.1']}" in r.stdout
    with srv.http() as h:
        p = h.get(family["1.0.1"] + "/providers/Vmforge/lineage", params=API).json()["properties"]
    assert p["artifact"]["revocation"]["reason"] == "CVE-2026-4242 in the base"
    assert p["artifact"]["revocation"]["revokedBy"]["objectId"]
    assert [h["action"] for h in p["history"]] == ["revoke"]

    r = _cli(srv, "revoke", "images/missing", "-g", RG, "--reason", "x")
    assert r.exit_code == 1 and "ResourceNotFound" in r.stderr

    r = _cli(srv, "unrevoke", family["1.0.1"], "--cascade", "--reason", "false alarm", "-o", "json")
    assert r.exit_code == 0, r.stderr
    assert cc.gallery_image_versions.get(RG, "gal", "deb", "latest").name == "1.0.1"
    assert "vmforge.revoked" not in (cc.images.get(RG, "child").tags or {})
    with srv.http() as h:
        p = h.get(family["1.0.1"] + "/providers/Vmforge/lineage", params=API).json()["properties"]
    assert [(x["action"], x["reason"]) for x in p["history"]] == [("revoke", "CVE-2026-4242 in the base"),
                                                                  ("unrevoke", "false alarm")]


def test_a_run_from_a_revoked_source_fails_before_any_vm(srv: Server, imports: Path) -> None:
    group = f"lin-{uuid.uuid4().hex[:6]}"
    srv.ensure_group(SUBSCRIPTION, group)
    bad = _image(compute(srv), group, "bad", imports)
    with srv.http() as h:
        r = h.post(bad + "/providers/Vmforge/revoke", params=API, json={"reason": "tampered image"})
        assert r.status_code == 200 and r.json()["revoked"] == [bad]
    ops = imagebuilder_client(srv).virtual_machine_image_templates
    ops._config.polling_interval = 0.2
    ops.begin_create_or_update(group, "from-bad", {"location": "westus", "identity": {"type": "None"}, "properties": {
        "source": {"type": "ManagedImage", "imageId": bad},
        "distribute": [{"type": "ManagedImage", "runOutputName": "img", "location": "westus",
                        "imageId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Compute/"
                                   "images/out"}]}}).result()
    with pytest.raises(HttpResponseError) as e:
        ops.begin_run(group, "from-bad").result()
    assert e.value.error.code == "SourceRevoked", e.value.message
    status = ops.get(group, "from-bad").last_run_status
    assert status.run_state == "Failed"
    assert "was revoked" in status.message and "tampered image" in status.message and bad in status.message
    with srv.http() as h:
        log = h.get(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.VirtualMachineImages/"
                    "imageTemplates/from-bad/runs/latest/log", params=API).text
    assert "tampered image" in log and "qemu" not in log.lower()
    assert list(ops.list_run_outputs(group, "from-bad")) == []
