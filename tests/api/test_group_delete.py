"""Deleting a resource group when it cannot finish at once: refused while a run is in progress (nothing
deleted), and a delete that a stop interrupted — after it marked the group, or half-way through what the group
holds — completed by the next start, its operation answering 202 until then and 200 after."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import RESOURCES_API, Server, free_port, imagebuilder_client, require_tools
from tests.api.test_resource_groups import compute_client, image_body, msi_client, template_body
from vmforge.auth import Principal
from vmforge.errors import ArmError
from vmforge.service import group_delete, groups
from vmforge.service.container import Services
from vmforge.service.ids import TemplatePath
from vmforge.service.runstate import RunState
from vmforge.settings import Settings
from vmforge.store.db import Database
from vmforge.store.models import Run, Template

SUB = "0d0d0d0d-1111-2222-3333-444444444444"


class NoEngine:
    """An engine that never builds: a submitted run stays Running (queued) until the test ends it."""

    def submit(self, run_id: int) -> None: ...

    def cancel(self, run_id: int) -> None: ...

    def shutdown(self) -> list[int]:
        return []


def services_of(data_dir: Path) -> Services:
    settings = Settings(data_dir=data_dir)
    settings.ensure_dirs()
    db = Database(settings.db_url)
    db.migrate()
    return Services(settings, db, NoEngine())


def test_refused_while_a_run_is_in_progress(tmp_path: Path) -> None:
    svc = services_of(tmp_path / "data")
    groups.ensure(svc.db, SUB, "rg", "westus")
    ident = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
    path = TemplatePath(SUB, "rg", "tpl")
    svc.templates.put(path, template_body(SUB, "rg", ident), "2024-02-01", Principal("test", "00000000-0000-0000-0000-0000000000aa"))
    for op_id in svc.templates.pending_operations():
        svc.finish(op_id)
    svc.runs.start(path)
    with pytest.raises(ArmError) as e:
        group_delete.begin(svc, SUB, "rg")
    assert (e.value.status, e.value.code) == (409, "ResourceGroupDeletionBlocked")
    assert "tpl" in e.value.message
    # Nothing changed: the group and its template are as they were, and no operation is pending.
    assert groups.require(svc.db, SUB, "rg").provisioning_state == "Succeeded"
    assert svc.templates.get(path).provisioning_state == "Succeeded"
    assert group_delete.pending(svc) == []
    with svc.db.session() as s:  # the run ends
        for run in s.query(Run):
            run.state = RunState.SUCCEEDED.value
    op = group_delete.begin(svc, SUB, "rg")
    assert groups.get(svc.db, SUB, "rg").provisioning_state == "Deleting"
    with pytest.raises(ArmError) as e:
        svc.runs.start(path)  # no run starts in a group being deleted
    assert e.value.status == 404
    with pytest.raises(ArmError) as e:
        groups.require(svc.db, SUB, "rg")
    assert e.value.code == "ResourceGroupNotFound"
    assert group_delete.begin(svc, SUB, "rg").id == op.id  # a second delete follows the first
    svc.finish(op.id)
    assert groups.get(svc.db, SUB, "rg") is None
    with svc.db.read() as s:
        assert s.query(Template).count() == 0 and s.query(Run).count() == 0
    assert group_delete.get_operation(svc, SUB, op.id).status == "Succeeded"
    svc.db.dispose()


@pytest.mark.parametrize("crash_after", ["marking", "the image"])
def test_an_interrupted_delete_completes_at_the_next_start(tmp_path: Path, crash_after: str) -> None:
    require_tools("qemu-img")
    from tests.artifacts.conftest import make_raw

    srv = Server(tmp_path / "data", free_port())
    srv.start()
    group = f"rg-{uuid.uuid4().hex[:6]}"
    try:
        srv.ensure_group(SUB, group)
        ident = msi_client(srv, SUB).user_assigned_identities.create_or_update(group, "builder", {"location": "westus"})
        imagebuilder_client(srv, subscription=SUB).virtual_machine_image_templates.begin_create_or_update(
            group, "tpl", template_body(SUB, group, ident.id)).result()
        disk = make_raw(srv.data_dir / "imports" / "disk.raw")
        compute_client(srv, SUB).images.begin_create_or_update(group, "img", image_body(disk.as_uri())).result()
        assert len(list((srv.data_dir / "blobs" / "sha256").glob("*/*.qcow2"))) == 1
        # The delete begins in another process and stops there (as if the server died right after marking
        # the group, or after deleting the image): the server's operation answers 202 meanwhile.
        svc = services_of(srv.data_dir)
        op = group_delete.begin(svc, SUB, group)
        if crash_after == "the image":
            from vmforge.artifacts import Artifacts

            Artifacts(svc.db, srv.data_dir).images.delete(SUB, group, "img")
        svc.db.dispose()
        params = {"api-version": RESOURCES_API}
        loc = f"/subscriptions/{SUB}/operationresults/{op.id}"
        with srv.http() as c:
            assert c.get(loc, params=params).status_code == 202
            assert c.get(f"/subscriptions/{SUB}/resourceGroups/{group}", params=params).json()[
                "properties"]["provisioningState"] == "Deleting"
            r = c.put(f"/subscriptions/{SUB}/resourceGroups/{group}", params=params, json={"location": "westus"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "ResourceGroupBeingDeleted"
        srv.stop()
        srv.start()
        with srv.http() as c:
            deadline = time.monotonic() + 20
            while (poll := c.get(loc, params=params)).status_code == 202 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert poll.status_code == 200
            assert c.head(f"/subscriptions/{SUB}/resourceGroups/{group}", params=params).status_code == 404
        srv.ensure_group(SUB, group)  # look inside a new group of the same name: nothing is left
        assert list(imagebuilder_client(srv, subscription=SUB).virtual_machine_image_templates
                    .list_by_resource_group(group)) == []
        assert list(compute_client(srv, SUB).images.list_by_resource_group(group)) == []
        assert list(msi_client(srv, SUB).user_assigned_identities.list_by_resource_group(group)) == []
        assert list((srv.data_dir / "blobs" / "sha256").glob("*/*.qcow2")) == []
    finally:
        srv.stop()
