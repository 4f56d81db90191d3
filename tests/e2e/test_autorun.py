"""autoRun, for real: a template PUT with ``autoRun.state: Enabled`` and nothing else builds the test image to a
Succeeded run; while it builds, its VM and OS disk are listed in the template's staging group carrying the
template's ``managedResourceTags``, and once it ends they are gone. Slow: one build."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SUBSCRIPTION, Server, StaticToken, imagebuilder_client
from tests.e2e.test_build import add_source, imports, start_server, template, vhd  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

TAGS = {"costCenter": "imaging"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, imports: Path) -> Iterator[Server]:  # noqa: F811
    s = start_server(tmp_path_factory.mktemp("autorun"), imports)
    add_source(s, imports)
    yield s
    s.stop()


def test_put_alone_builds_and_stages_tagged_resources(srv: Server) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    arm = ResourceManagementClient(StaticToken(srv.token), SUBSCRIPTION, base_url=srv.url,
                                   connection_verify=srv.cert, retry_total=0)
    ib = imagebuilder_client(srv)
    group, name = f"rg-{uuid.uuid4().hex[:6]}", "autorun"
    srv.ensure_group(SUBSCRIPTION, group)
    body = template([{"type": "Shell", "name": "hello", "inline": ["echo built by autoRun > /etc/autorun"]}],
                    [vhd()], autoRun={"state": "Enabled"}, managedResourceTags=TAGS)
    t = ib.virtual_machine_image_templates.begin_create_or_update(group, name, body).result()
    assert t.auto_run.state == "Enabled"
    staging_group = t.exact_staging_resource_group.rsplit("/", 1)[-1]
    seen: dict[tuple[str, str], dict] = {}
    deadline = time.monotonic() + 1200
    while True:
        status = ib.virtual_machine_image_templates.get(group, name).last_run_status
        assert status is not None, "autoRun started no run"
        if status.run_state not in ("Running", "Canceling"):
            break
        for r in arm.resources.list_by_resource_group(staging_group):
            seen[(r.type, r.name)] = r.tags
        assert time.monotonic() < deadline, "the autoRun build did not end"
        time.sleep(1)
    assert status.run_state == "Succeeded", status.message
    runs = srv.http().get(f"{t.id}/runs", params={"api-version": "2025-10-01"}).json()["value"]
    assert len(runs) == 1  # started once, by the PUT
    vm = next(k for k in seen if k[0] == "Microsoft.Compute/virtualMachines")
    assert seen[vm] == TAGS
    assert seen[("Microsoft.Compute/disks", f"{vm[1]}-osdisk")] == TAGS
    assert list(arm.resources.list_by_resource_group(staging_group)) == []
    out = ib.virtual_machine_image_templates.get_run_output(group, name, "vhd")
    assert out.provisioning_state == "Succeeded" and out.artifact_uri
