"""Nothing crosses a subscription boundary: a Contributor of subscription A whose template names a source or a
target in subscription B gets a refusal for every reference kind, before any VM boots and with nothing written in
B; the template's identity is what a run acts as; linked identities and the Compute APIs' own references are
checked against the caller; the platform catalog is published only from the root scope."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from tests.conftest import SUBSCRIPTION, Server, StaticToken
from tests.identity.helpers import cli, token_for
from tests.tenancy.helpers import auth_client, msi_client, resource_client

A = SUBSCRIPTION
B = "bbbbbbbb-0000-4000-8000-00000000000b"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def _ib(server: Server, token: str, sub: str = A):  # noqa: ANN202
    from azure.mgmt.imagebuilder import ImageBuilderClient

    c = ImageBuilderClient(StaticToken(token), sub, base_url=server.url, connection_verify=server.cert,
                           retry_total=0)
    c._config.polling_interval = 0.2
    return c


def _compute(server: Server, token: str, sub: str = A):  # noqa: ANN202
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(StaticToken(token), sub, base_url=server.url, connection_verify=server.cert,
                                   retry_total=0, polling_interval=0.2)


@pytest.fixture(scope="module")
def world(server: Server) -> dict[str, Any]:
    """Groups in A and B (made by the admin), and a Contributor of A only."""
    ga, gb = f"rg-a-{uuid.uuid4().hex[:6]}", f"rg-b-{uuid.uuid4().hex[:6]}"
    resource_client(server, A).resource_groups.create_or_update(ga, {"location": "westus"})
    resource_client(server, B).resource_groups.create_or_update(gb, {"location": "westus"})
    sp = cli(server, "principal", "create", f"contrib-a-{uuid.uuid4().hex[:4]}", "--role", "Contributor",
             "--scope", f"/subscriptions/{A}")
    # A platform image in the catalog (registered by the admin, from the root scope), so that runs whose targets
    # are refused get past the source.
    from tests.artifacts.conftest import make_raw

    imports = server.data_dir / "imports"
    imports.mkdir(exist_ok=True)
    disk = make_raw(imports / "boundaries.raw", size=4 * 1024 * 1024)
    with server.http() as h:
        r = h.put(f"/subscriptions/{A}/providers/Microsoft.Compute/locations/westus/publishers/Bounds/artifacttypes/"
                  "vmimage/offers/o/skus/s/versions/1.0.0", params={"api-version": "2026-04-01"},
                  json={"properties": {"blobUri": disk.as_uri(), "osType": "Linux"}})
        assert r.status_code in (200, 201), r.text
    return {"ga": ga, "gb": gb, "token": token_for(server, sp["appId"], sp["password"]), "app": sp["appId"]}


def _in_b(world: dict, kind: str, name: str) -> str:
    return f"/subscriptions/{B}/resourceGroups/{world['gb']}/providers/Microsoft.Compute/{kind}/{name}"


def _template(source: dict, distribute: list, identity: dict | None = None) -> dict:
    return {"location": "westus", "identity": identity or {"type": "None"},
            "properties": {"source": source, "customize": [{"type": "Shell", "name": "s", "inline": ["true"]}],
                           "distribute": distribute}}


PLATFORM = {"type": "PlatformImage", "publisher": "Bounds", "offer": "o", "sku": "s", "version": "1.0.0"}


def _run_fails(server: Server, token: str, group: str, body: dict) -> str:
    ops = _ib(server, token).virtual_machine_image_templates
    name = f"t-{uuid.uuid4().hex[:6]}"
    ops.begin_create_or_update(group, name, body).result()
    with pytest.raises(HttpResponseError) as e:
        ops.begin_run(group, name).result()
    status = ops.get(group, name).last_run_status
    assert status.run_state == "Failed"
    assert e.value.error.code == "AuthorizationFailed", e.value.message
    return status.message


@pytest.mark.parametrize("case", ["source-image", "source-gallery-version", "target-image", "target-gallery"])
def test_contributor_of_a_cannot_reach_into_b(server: Server, world: dict, case: str) -> None:
    local = f"/subscriptions/{A}/resourceGroups/{world['ga']}/providers/Microsoft.Compute/images/out-{case}"
    mine = [{"type": "ManagedImage", "runOutputName": "o", "location": "westus", "imageId": local}]
    if case == "source-image":
        ref, action = _in_b(world, "images", "secret"), "Microsoft.Compute/images/read"
        body = _template({"type": "ManagedImage", "imageId": ref}, mine)
    elif case == "source-gallery-version":
        ref = _in_b(world, "galleries", "g/images/d/versions/1.0.0")
        action = "Microsoft.Compute/galleries/images/versions/read"
        body = _template({"type": "SharedImageVersion", "imageVersionId": ref}, mine)
    elif case == "target-image":
        ref, action = _in_b(world, "images", "planted"), "Microsoft.Compute/images/write"
        body = _template(PLATFORM, [{"type": "ManagedImage", "runOutputName": "o", "location": "westus",
                                     "imageId": ref}])
    else:
        ref = _in_b(world, "galleries", "g/images/d")
        action = "Microsoft.Compute/galleries/images/versions/write"
        body = _template(PLATFORM, [{"type": "SharedImage", "runOutputName": "o", "galleryImageId": ref,
                                     "replicationRegions": ["westus"]}])
    message = _run_fails(server, world["token"], world["ga"], body)
    assert f"action '{action}'" in message and ref in message, message
    assert "no user-assigned identity" in message
    # Nothing was written in B (the admin looks).
    admin_b = _compute(server, server.token, B)
    assert list(admin_b.images.list_by_resource_group(world["gb"])) == []
    assert list(admin_b.galleries.list_by_resource_group(world["gb"])) == []


def test_a_run_acts_as_the_template_identity(server: Server, world: dict) -> None:
    ident = msi_client(server, A).user_assigned_identities.create_or_update(world["ga"], f"id-{uuid.uuid4().hex[:4]}",
                                                                              {"location": "westus"})
    auth = auth_client(server, A)
    auth.role_assignments.create(f"/subscriptions/{A}", str(uuid.uuid4()), {
        "role_definition_id": f"/subscriptions/{A}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}",
        "principal_id": ident.principal_id, "principal_type": "ServicePrincipal"})
    secret = _in_b(world, "images", "secret")
    local = f"/subscriptions/{A}/resourceGroups/{world['ga']}/providers/Microsoft.Compute/images/out-id"
    body = _template({"type": "ManagedImage", "imageId": secret},
                     [{"type": "ManagedImage", "runOutputName": "o", "location": "westus", "imageId": local}],
                     {"type": "UserAssigned", "userAssignedIdentities": {ident.id: {}}})
    message = _run_fails(server, world["token"], world["ga"], body)
    assert ident.client_id in message and "Microsoft.Compute/images/read" in message and secret in message

    # Reader on B's group, given to the identity by the admin: the same template now passes the check and fails
    # only because the image does not exist — the role is what decided.
    auth_client(server, B).role_assignments.create(f"/subscriptions/{B}/resourceGroups/{world['gb']}",
                                                   str(uuid.uuid4()), {
        "role_definition_id": f"/subscriptions/{B}/providers/Microsoft.Authorization/roleDefinitions/{READER}",
        "principal_id": ident.principal_id, "principal_type": "ServicePrincipal"})
    ops = _ib(server, world["token"]).virtual_machine_image_templates
    name = f"t-{uuid.uuid4().hex[:6]}"
    ops.begin_create_or_update(world["ga"], name, body).result()
    with pytest.raises(HttpResponseError) as e:
        ops.begin_run(world["ga"], name).result()
    assert e.value.error.code != "AuthorizationFailed", e.value.message
    assert ops.get(world["ga"], name).last_run_status.message.startswith("Source:")


def test_linked_identity_checks_at_put(server: Server, world: dict) -> None:
    foreign = msi_client(server, B).user_assigned_identities.create_or_update(world["gb"], "theirs",
                                                                                {"location": "westus"})
    ops = _ib(server, world["token"]).virtual_machine_image_templates
    body = _template(PLATFORM, [{"type": "VHD", "runOutputName": "v"}],
                     {"type": "UserAssigned", "userAssignedIdentities": {foreign.id: {}}})
    with pytest.raises(HttpResponseError) as e:
        ops.begin_create_or_update(world["ga"], "borrows", body).result()
    assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"
    assert foreign.id in e.value.message and "userAssignedIdentities/assign/action" in e.value.message
    missing = f"/subscriptions/{A}/resourceGroups/{world['ga']}/providers/Microsoft.ManagedIdentity/" \
              "userAssignedIdentities/nobody"
    body["identity"]["userAssignedIdentities"] = {missing: {}}
    with pytest.raises(HttpResponseError) as e:
        ops.begin_create_or_update(world["ga"], "ghost", body).result()
    assert e.value.status_code == 400 and e.value.error.code == "FailedIdentityOperation"
    with pytest.raises(HttpResponseError):
        ops.get(world["ga"], "borrows")
    # The template reports the identity's own ids.
    mine = msi_client(server, A).user_assigned_identities.create_or_update(world["ga"], "mine",
                                                                            {"location": "westus"})
    body["identity"]["userAssignedIdentities"] = {mine.id: {}}
    t = ops.begin_create_or_update(world["ga"], "owned", body).result()
    reported = next(iter(t.identity.user_assigned_identities.values()))
    assert (reported.principal_id, reported.client_id) == (mine.principal_id, mine.client_id)


def test_compute_references_are_checked_against_the_caller(server: Server, world: dict) -> None:
    compute = _compute(server, world["token"])
    with pytest.raises(HttpResponseError) as e:
        compute.images.begin_create_or_update(world["ga"], "copy", {
            "location": "westus", "properties": {"storageProfile": {"osDisk": {
                "osType": "Linux", "osState": "Generalized", "managedDisk": {"id": _in_b(world, "images", "x")}}}}}
        ).result()
    assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"
    assert "Microsoft.Compute/images/read" in e.value.message
    with pytest.raises(HttpResponseError) as e:
        compute.gallery_image_versions.begin_create_or_update(world["ga"], "g", "d", "1.0.0", {
            "location": "westus", "properties": {"storageProfile": {"source": {"id": _in_b(world, "images", "x")}}}}
        ).result()
    assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"


def test_compute_references_are_checked_however_the_names_are_spelled(server: Server, world: dict) -> None:
    """Compute bodies match names case-insensitively, as Azure's Compute provider does: the permission check
    reads the references from the body as the service reads it, so no spelling slips a reference past it."""
    import httpx

    headers = {"Authorization": f"Bearer {world['token']}"}
    base = f"{server.url}/subscriptions/{A}/resourceGroups/{world['ga']}/providers/Microsoft.Compute"
    image = {"location": "westus", "properties": {"StorageProfile": {"osdisk": {
        "osType": "Linux", "osState": "Generalized", "MANAGEDDISK": {"ID": _in_b(world, "images", "x")}}}}}
    version = {"location": "westus", "properties": {"storageprofile": {"Source": {"Id": _in_b(world, "images", "x")}}}}
    for url, body, version_param, target in (
            (f"{base}/images/cased", image, "2026-04-01", "properties.storageProfile.osDisk.managedDisk.id"),
            (f"{base}/galleries/g/images/d/versions/1.0.0", version, "2026-03-03", "properties.storageProfile.source.id")):
        r = httpx.put(url, params={"api-version": version_param}, json=body, headers=headers,
                      verify=server.ssl_context())
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "LinkedAuthorizationFailed" and r.json()["error"]["target"] == target


def test_platform_catalog_is_published_from_the_root_scope(server: Server, world: dict, tmp_path) -> None:  # noqa: ANN001
    import httpx

    url = (f"{server.url}/subscriptions/{A}/providers/Microsoft.Compute/locations/westus/publishers/Evil/"
           "artifacttypes/vmimage/offers/o/skus/s/versions/1.0.0")
    r = httpx.put(url, params={"api-version": "2026-04-01"}, verify=server.ssl_context(),
                  headers={"Authorization": f"Bearer {world['token']}"},
                  json={"properties": {"blobUri": "file:///nonexistent.vhd"}})
    assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed", r.text
    assert "over scope '/'" in r.json()["error"]["message"]
    # Reading the catalog needs no role at all: a principal with none in subscription B lists B's view of it.
    r = httpx.get(f"{server.url}/subscriptions/{B}/providers/Microsoft.Compute/locations/westus/publishers",
                  params={"api-version": "2026-04-01"}, verify=server.ssl_context(),
                  headers={"Authorization": f"Bearer {world['token']}"})
    assert r.status_code == 200, r.text
