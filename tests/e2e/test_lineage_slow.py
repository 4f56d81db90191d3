"""Lineage across two generations, with real builds (two, the least the scenario needs):

template A builds from the test image (a managed image) into gallery version 1.0.0 and a managed image;
template B builds from ``versions/latest`` of that definition (resolved to A's 1.0.0, recorded exactly) into
version 1.0.1 and a managed image. Then, with no further boot: B's outputs carry the lineage tags (through
azure-mgmt-compute) and ``vmforge lineage`` shows B's image → A's 1.0.0 → the test image; revoking A's 1.0.0 with
``--cascade`` marks B's outputs; a template C built from B's image fails before any VM with the reason; and
``latest`` moves back to 0.9.0, the newest good version (published from the test image through the Compute API).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tests.conftest import SUBSCRIPTION, Server
from tests.e2e.test_build import SRC_IMAGE, add_source, compute, imports, log_of, run_template, start_server
from tests.e2e.test_build import template as body_of

pytestmark = pytest.mark.slow

__all__ = ["imports"]  # the fixture, from test_build

OUT = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/out/providers/Microsoft.Compute"
DEF = f"{OUT}/galleries/gal/images/debian"
API = {"api-version": "2025-10-01"}


def _succeeded(srv: Server, client, group: str, name: str) -> dict:  # noqa: ANN001
    ops = client.virtual_machine_image_templates
    status = ops.get(group, name).last_run_status
    if status.run_state != "Succeeded":
        pytest.fail(f"{name}: {status.message}\n{log_of(srv, group, name)[-4000:]}")
    return {o.name: o.artifact_id for o in ops.list_run_outputs(group, name)}


def test_lineage_and_revocation_across_two_generations(tmp_path_factory: pytest.TempPathFactory,
                                                       imports: Path) -> None:
    srv = start_server(tmp_path_factory.mktemp("lineage"), imports)
    try:
        add_source(srv, imports)
        cc = compute(srv)
        cc.galleries.begin_create_or_update("out", "gal", {"location": "westus"}).result()
        cc.gallery_images.begin_create_or_update("out", "gal", "debian", {"location": "westus", "properties": {
            "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V1",
            "identifier": {"publisher": "vmforge", "offer": "debian", "sku": "12"}}}).result()
        cc.gallery_image_versions.begin_create_or_update("out", "gal", "debian", "0.9.0", {
            "location": "westus", "properties": {"storageProfile": {"source": {"id": SRC_IMAGE}}}}).result()

        # Generation A, from the test image.
        a_body = body_of([{"type": "Shell", "name": "gen-a", "inline": ["echo a > /etc/vmforge-gen"]}], [
            {"type": "SharedImage", "runOutputName": "sig", "galleryImageId": DEF,
             "targetRegions": [{"name": "westus"}], "versioning": {"scheme": "Latest", "major": 1}},
            {"type": "ManagedImage", "runOutputName": "img", "imageId": f"{OUT}/images/a-img", "location": "westus"}])
        client, a_group, a_name = run_template(srv, a_body, "tpl-a")
        a_out = _succeeded(srv, client, a_group, a_name)
        a_ver = a_out["sig"]
        assert a_ver == f"{DEF}/versions/1.0.0"

        # Generation B, from the definition's latest version (A's 1.0.0 now).
        b_body = body_of([{"type": "Shell", "name": "gen-b", "inline": ["echo b > /etc/vmforge-gen"]}], [
            {"type": "SharedImage", "runOutputName": "sig", "galleryImageId": DEF, "targetRegions": [{"name": "westus"}]},
            {"type": "ManagedImage", "runOutputName": "img", "imageId": f"{OUT}/images/b-img", "location": "westus"}])
        b_body["properties"]["source"] = {"type": "SharedImageVersion", "imageVersionId": f"{DEF}/versions/latest"}
        client, b_group, b_name = run_template(srv, b_body, "tpl-b")
        b_out = _succeeded(srv, client, b_group, b_name)
        assert b_out["sig"] == f"{DEF}/versions/1.0.1"
        b_img = b_out["img"]

        # The lineage tags, through the Compute SDK: the exact source, never 'latest'.
        tags = cc.images.get("out", "b-img").tags
        assert tags["vmforge.source"] == a_ver
        assert tags["vmforge.template"].endswith(f"/resourceGroups/{b_group}/providers/"
                                                 "Microsoft.VirtualMachineImages/imageTemplates/tpl-b")
        assert tags["vmforge.run"].isdigit() and tags["vmforge.templateRevision"].startswith("v")
        assert cc.gallery_image_versions.get("out", "gal", "debian", "1.0.0").tags["vmforge.source"] == SRC_IMAGE
        assert cc.gallery_image_versions.get("out", "gal", "debian", "latest").name == "1.0.1"

        env = {"VMFORGE_HOME": str(srv.data_dir), "VMFORGE_SUBSCRIPTION": SUBSCRIPTION}
        r = invoke(["lineage", b_img, "-o", "json"], env)
        assert r.exit_code == 0, r.stderr
        import json

        p = json.loads(r.stdout)["properties"]
        assert [n["id"] for n in p["ancestors"]] == [a_ver, SRC_IMAGE]
        assert p["ancestors"][0]["run"]["templateId"].endswith("/imageTemplates/tpl-a")
        r = invoke(["lineage", SRC_IMAGE], env)
        assert r.exit_code == 0, r.stderr
        for artifact in (a_ver, f"{OUT}/images/a-img", f"{DEF}/versions/1.0.1", b_img):
            assert artifact in r.stdout
        assert "REVOKED" not in r.stdout

        # Revoke A's version with its descendants: B's outputs are marked, A's managed image (a sibling) is not.
        r = invoke(["revoke", a_ver, "--cascade", "--reason", "CVE-2026-9999: bad openssl in generation A"], env)
        assert r.exit_code == 0, r.stderr
        revoked = sorted(line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("revoked: "))
        assert revoked == sorted([a_ver, f"{DEF}/versions/1.0.1", b_img])
        assert "CVE-2026-9999" in cc.images.get("out", "b-img").tags["vmforge.revoked"]
        assert "vmforge.revoked" not in cc.images.get("out", "a-img").tags
        r = invoke(["lineage", b_img], env)
        assert r.exit_code == 0 and r.stdout.count("REVOKED") >= 2 and "CVE-2026-9999" in r.stdout

        # latest moves back to the newest good version; the revoked ones still read.
        assert cc.gallery_image_versions.get("out", "gal", "debian", "latest").name == "0.9.0"
        assert cc.gallery_image_versions.get("out", "gal", "debian", "1.0.1").name == "1.0.1"

        # A run from B's (revoked) image fails before any VM, with the reason.
        c_body = body_of([{"type": "Shell", "name": "gen-c", "inline": ["true"]}], [
            {"type": "ManagedImage", "runOutputName": "img", "imageId": f"{OUT}/images/c-img", "location": "westus"}])
        c_body["properties"]["source"] = {"type": "ManagedImage", "imageId": b_img}
        client, c_group, c_name = run_template(srv, c_body, "tpl-c")
        status = client.virtual_machine_image_templates.get(c_group, c_name).last_run_status
        assert status.run_state == "Failed"
        assert "was revoked" in status.message and "CVE-2026-9999" in status.message and a_ver in status.message
        text = log_of(srv, c_group, c_name)
        assert 'Boot "build VM"' not in text and "tpl-c" in text
    finally:
        srv.stop()
