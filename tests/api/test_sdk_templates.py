"""The image template API driven through Microsoft's own client, azure-mgmt-imagebuilder 2.0.0, over HTTPS
with the server's generated certificate — with the client's default api-version and each older one."""

from __future__ import annotations

import copy
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.conftest import SUBSCRIPTION, Server, imagebuilder_client, load_example

VERSIONS = [None, "2022-07-01", "2023-07-01", "2024-02-01"]
READ_ONLY = {"id", "systemData", "provisioningState", "exactStagingResourceGroup", "lastRunStatus",
             "provisioningError", "principalId", "clientId", "exactVersion"}


def _example_version(v: str | None) -> str:
    # 2023-07-01 has no examples of its own: its requests match 2024-02-01's.
    return {None: "2025-10-01", "2023-07-01": "2024-02-01"}.get(v, v)


def create_body(v: str | None, kind: str = "Linux") -> tuple[dict, dict]:
    ex = load_example(_example_version(v), f"CreateImageTemplate{kind}")
    return copy.deepcopy(ex["parameters"]["parameters"]), ex["responses"]["201"]["body"]


def shape(value, path=""):  # noqa: ANN001, ANN201
    """The keys of a JSON document, recursively, without read-only fields."""
    if isinstance(value, dict):
        return {k: shape(v, f"{path}.{k}") for k, v in value.items() if k not in READ_ONLY}
    if isinstance(value, list):
        return [shape(v, path) for v in value]
    return type(value).__name__


def strip(value):  # noqa: ANN001, ANN201
    """A JSON document without its read-only fields (ids and times are the server's own)."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in READ_ONLY}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


@pytest.fixture(params=VERSIONS, ids=lambda v: v or "default")
def api(request, server):  # noqa: ANN001, ANN201
    return request.param, imagebuilder_client(server, request.param)


def grant_contributor(srv: Server, identity_id: str, scope: str) -> None:
    """Contributor over ``scope`` for the managed identity ``identity_id``, through the ARM role assignment API."""
    with srv.http() as h:
        ident = h.get(identity_id, params={"api-version": "2023-01-31"}).json()
        contributor = "b24988ac-6180-42a0-ab88-20f7382dd24c"
        at = "" if scope == "/" else scope
        r = h.put(f"{at}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                  params={"api-version": "2022-04-01"},
                  json={"properties": {"principalId": ident["properties"]["principalId"],
                                       "roleDefinitionId": f"{at}/providers/Microsoft.Authorization/"
                                                           f"roleDefinitions/{contributor}"}})
        assert r.status_code == 201, r.text


def rg(srv: Server) -> str:
    """A new resource group on ``srv`` (templates are created only in a group that exists)."""
    name = f"rg-{uuid.uuid4().hex[:8]}"
    srv.ensure_group(SUBSCRIPTION, name)
    return name


@pytest.mark.parametrize("kind", ["Linux", "Windows"])
def test_create_example_get_and_delete(api, server, kind):  # noqa: ANN001
    version, client = api
    body, expected = create_body(version, kind)
    group, name = rg(server), f"tpl{kind}"
    ops = client.virtual_machine_image_templates
    created = ops.begin_create_or_update(group, name, body).result()
    assert created.provisioning_state == "Succeeded"
    got = ops.get(group, name).as_dict()
    assert got["name"] == name
    assert got["id"] == f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.VirtualMachineImages/imageTemplates/{name}"
    assert got["type"] == "Microsoft.VirtualMachineImages/imageTemplates"
    # The response on the wire has the example's shape and values (ids and times aside).
    resp = ops.get(group, name, cls=lambda pipeline_response, _d, _h: pipeline_response.http_response.json())
    exp = {k: v for k, v in expected.items() if k not in ("id", "name")}
    mine = {k: v for k, v in resp.items() if k in exp}
    assert shape(mine) == shape(exp)
    assert strip(mine) == strip(exp)
    assert resp["properties"]["provisioningState"] == "Succeeded"
    assert resp["properties"]["exactStagingResourceGroup"].startswith(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/")
    for ident in resp["identity"]["userAssignedIdentities"].values():
        uuid.UUID(ident["principalId"]), uuid.UUID(ident["clientId"])
    assert resp["systemData"]["createdByType"] == "Application"
    ops.begin_delete(group, name).result()
    with pytest.raises(ResourceNotFoundError) as e:
        ops.get(group, name)
    assert e.value.error.code == "ResourceNotFound"


def test_list_pages_both_ways(api, server):  # noqa: ANN001
    version, client = api
    body, _ = create_body(version)
    group = rg(server)
    names = [f"page-{i}" for i in range(7)]
    ops = client.virtual_machine_image_templates
    pollers = [ops.begin_create_or_update(group, n, body) for n in names]
    for p in pollers:
        p.result()
    # The server's page size is 3: 7 templates are 3 pages, which the SDK's pager follows.
    by_group = ops.list_by_resource_group(group)
    pages = list(by_group.by_page())
    assert len(pages) == 3
    assert sorted(t.name for page in pages for t in page) == sorted(names)
    all_names = {t.name for t in ops.list()}
    assert set(names) <= all_names


def test_update_tags_and_identity(api, server):  # noqa: ANN001
    version, client = api
    body, _ = create_body(version)
    group, name = rg(server), "tags"
    ops = client.virtual_machine_image_templates
    ops.begin_create_or_update(group, name, body).result()
    updated = ops.begin_update(group, name, {"tags": {"new-tag": "new-value"}}).result()
    assert updated.tags == {"new-tag": "new-value"}
    assert ops.get(group, name).tags == {"new-tag": "new-value"}
    removed = ops.begin_update(group, name, {"identity": {"type": "None"}}).result()
    assert removed.identity.type == "None"
    assert not removed.identity.user_assigned_identities


def test_triggers(api, server):  # noqa: ANN001
    version, client = api
    body, _ = create_body(version)
    group, name = rg(server), "trig"
    client.virtual_machine_image_templates.begin_create_or_update(group, name, body).result()
    trig = client.triggers.begin_create_or_update(group, name, "source", {"properties": {"kind": "SourceImage"}}).result()
    assert trig.name == "source"
    assert trig.properties.kind == "SourceImage"
    assert trig.properties.provisioning_state == "Succeeded"
    assert trig.properties.status.code == "Healthy"
    assert [t.name for t in client.triggers.list_by_image_template(group, name)] == ["source"]
    assert client.triggers.get(group, name, "source").type == "Microsoft.VirtualMachineImages/imageTemplates/triggers"
    client.triggers.begin_delete(group, name, "source").result()
    with pytest.raises(ResourceNotFoundError):
        client.triggers.get(group, name, "source")
    assert list(client.triggers.list_by_image_template(group, name)) == []


def test_operations_list(api):  # noqa: ANN001
    _, client = api
    names = [o.name for o in client.operations.list()]
    assert "Microsoft.VirtualMachineImages/imageTemplates/run/action" in names
    assert len(names) == 13


def test_not_found(api, server):  # noqa: ANN001
    _, client = api
    group = rg(server)
    with pytest.raises(ResourceNotFoundError) as e:
        client.virtual_machine_image_templates.get(group, "missing")
    assert e.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_image_templates.get_run_output(group, "missing", "out")
    with pytest.raises(ResourceNotFoundError):
        client.triggers.get(group, "missing", "source")
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_image_templates.begin_run(group, "missing").result()
    # Deleting what does not exist succeeds (204), as ARM does.
    client.virtual_machine_image_templates.begin_delete(group, "missing").result()


def test_run_with_a_missing_source_fails_with_aibs_code(api, server):  # noqa: ANN001
    """The example's source image does not exist here: the run fails honestly, with AIB's code, builds nothing.
    (The template's identity is Contributor of the subscription its source and targets lie in — without that the
    run fails earlier, with AuthorizationFailed: tests/tenancy/test_boundaries.py.)"""
    version, client = api
    body, _ = create_body(version)
    group, name = rg(server), "run"
    # An identity of this test's own, Contributor everywhere (the example's targets name several subscriptions).
    identity = server.ensure_identity(SUBSCRIPTION, group, "runner")["id"]
    grant_contributor(server, identity, "/")
    body["identity"]["userAssignedIdentities"] = {identity: {}}
    ops = client.virtual_machine_image_templates
    ops.begin_create_or_update(group, name, body).result()
    with pytest.raises(HttpResponseError) as e:
        ops.begin_run(group, name).result()
    assert e.value.error.code == "BadManagedImageSource", e.value.message
    status = ops.get(group, name).last_run_status
    assert status.run_state == "Failed"
    assert "was not found" in status.message
    assert status.start_time is not None and status.end_time is not None
    assert list(ops.list_run_outputs(group, name)) == []
    with pytest.raises(HttpResponseError) as e:
        ops.begin_cancel(group, name).result()
    assert e.value.status_code == 409


BROKEN = [
    # (mutation of the Linux example's properties, expected target)
    (lambda p: p["distribute"][0].update(runOutputName="bad name!"), "properties.distribute[0].runOutputName"),
    (lambda p: p.update(buildTimeoutInMinutes=961), "properties.buildTimeoutInMinutes"),
    (lambda p: p["customize"][0].update(inline=["echo hi"]), "properties.customize[0]"),
    (lambda p: p["source"].update(type="Nope"), "properties.source.type"),
    (lambda p: p.pop("distribute"), "properties.distribute"),
    (lambda p: p["vmProfile"].update(osDiskSizeGB=-1), "properties.vmProfile.osDiskSizeGB"),
]


@pytest.mark.parametrize("mutate,target", BROKEN, ids=[t for _, t in BROKEN])
def test_validation_rules_rejected(api, server, mutate, target):  # noqa: ANN001
    version, client = api
    body, _ = create_body(version)
    mutate(body["properties"])
    group = rg(server)
    with pytest.raises(HttpResponseError) as e:
        client.virtual_machine_image_templates.begin_create_or_update(group, "broken", body).result()
    assert e.value.status_code == 400
    assert e.value.error.code == "ValidationFailed"
    targets = [d.target for d in e.value.error.details]
    assert any(t and t.startswith(target) for t in targets), targets
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_image_templates.get(group, "broken")


def test_every_error_at_once(server):  # noqa: ANN001
    client = imagebuilder_client(server)
    body, _ = create_body(None)
    body["properties"]["buildTimeoutInMinutes"] = 5000
    body["properties"]["distribute"][0]["runOutputName"] = "bad name"
    body["properties"]["customize"][0]["inline"] = ["x"]
    with pytest.raises(HttpResponseError) as e:
        client.virtual_machine_image_templates.begin_create_or_update(rg(server), "many", body).result()
    assert len(e.value.error.details) >= 3
