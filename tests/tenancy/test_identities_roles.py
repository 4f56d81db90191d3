"""Managed identities, custom role definitions and role assignments through azure-mgmt-msi and
azure-mgmt-authorization — and what they grant: an identity assigned a custom role at a resource group holds
exactly those actions there, and nothing elsewhere."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import SUBSCRIPTION, Server
from tests.tenancy.helpers import auth_client, msi_client, resource_client

SUB_SCOPE = f"/subscriptions/{SUBSCRIPTION}"


def _group(server: Server, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    resource_client(server).resource_groups.create_or_update(name, {"location": "westus"})
    return name


def test_identity_round_trip(server: Server) -> None:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    group = _group(server, "rg-msi")
    ids = msi_client(server).user_assigned_identities
    made = ids.create_or_update(group, "builder", {"location": "West US", "tags": {"team": "img"}})
    assert made.name == "builder" and made.location == "westus" and made.tags == {"team": "img"}
    assert uuid.UUID(made.principal_id) and uuid.UUID(made.client_id) and made.principal_id != made.client_id
    assert made.id.lower() == (f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}/providers/"
                               "microsoft.managedidentity/userassignedidentities/builder").lower()
    again = ids.create_or_update(group, "builder", {"location": "westus"})
    assert (again.principal_id, again.client_id) == (made.principal_id, made.client_id)
    assert ids.get(group, "builder").tenant_id == made.tenant_id
    assert ids.update(group, "builder", {"tags": {"team": "ops"}}).tags == {"team": "ops"}
    assert [i.name for i in ids.list_by_resource_group(group)] == ["builder"]
    assert made.id in [i.id for i in ids.list_by_subscription()]
    with pytest.raises(HttpResponseError) as e:
        ids.create_or_update(f"missing-{uuid.uuid4().hex[:6]}", "x1x", {"location": "westus"})
    assert e.value.status_code == 404 and e.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(HttpResponseError) as e:
        ids.create_or_update(group, "-bad", {"location": "westus"})
    assert e.value.status_code == 400 and e.value.error.code == "InvalidResourceName"
    ids.delete(group, "builder")
    with pytest.raises(ResourceNotFoundError):
        ids.get(group, "builder")


def test_builtin_roles_have_their_real_names_and_ids(server: Server) -> None:
    defs = auth_client(server).role_definitions
    by_name = {d.role_name: d for d in defs.list(SUB_SCOPE)}
    assert by_name["Owner"].name == "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
    assert by_name["Contributor"].name == "b24988ac-6180-42a0-ab88-20f7382dd24c"
    assert by_name["Reader"].name == "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    assert by_name["Managed Identity Operator"].name == "f1a07417-d97a-45cb-824c-7a7467783830"
    assert by_name["Reader"].role_type == "BuiltInRole"
    only = list(defs.list(SUB_SCOPE, filter="roleName eq 'Contributor'"))
    assert [d.role_name for d in only] == ["Contributor"]
    assert defs.get(SUB_SCOPE, by_name["Owner"].name).role_name == "Owner"


def test_custom_role_assigned_to_an_identity_grants_exactly_its_actions(server: Server) -> None:
    from azure.core.exceptions import HttpResponseError

    group = _group(server, "rg-role")
    other = _group(server, "rg-other")
    ident = msi_client(server).user_assigned_identities.create_or_update(group, "maker", {"location": "westus"})
    client = auth_client(server)
    role_id = str(uuid.uuid4())
    name = f"Image Creation {uuid.uuid4().hex[:6]}"
    rd = client.role_definitions.create_or_update(SUB_SCOPE, role_id, {
        "role_name": name, "description": "Image Builder access to create resources for the image build",
        "role_type": "CustomRole",
        "permissions": [{"actions": ["Microsoft.Compute/galleries/read", "Microsoft.Compute/galleries/images/*",
                                     "Microsoft.Compute/images/write", "Microsoft.Compute/images/read"],
                         "not_actions": ["Microsoft.Compute/galleries/images/delete"]}],
        "assignable_scopes": [SUB_SCOPE]})
    assert rd.name == role_id and rd.role_type == "CustomRole"
    assert [d.name for d in client.role_definitions.list(f"{SUB_SCOPE}/resourceGroups/{group}",
                                                        filter=f"roleName eq '{name}'")] == [role_id]
    with pytest.raises(HttpResponseError) as e:  # one name, one role
        client.role_definitions.create_or_update(SUB_SCOPE, str(uuid.uuid4()), {
            "role_name": name, "permissions": [{"actions": ["*/read"]}], "assignable_scopes": [SUB_SCOPE]})
    assert e.value.status_code == 409

    scope = f"{SUB_SCOPE}/resourceGroups/{group}"
    assignment = client.role_assignments.create(scope, str(uuid.uuid4()), {
        "role_definition_id": rd.id, "principal_id": ident.principal_id, "principal_type": "ServicePrincipal"})
    assert assignment.principal_id == ident.principal_id and assignment.scope.lower() == scope.lower()
    assert assignment.role_definition_id.endswith(role_id)
    listed = list(client.role_assignments.list_for_scope(scope, filter=f"principalId eq '{ident.principal_id}'"))
    assert [a.name for a in listed] == [assignment.name]
    assert client.role_assignments.get(scope, assignment.name).principal_id == ident.principal_id

    # What the role grants, asked of the server's own authorizer through the API: the identity's token is minted
    # the way the build VM's metadata endpoint mints it.
    from vmforge.identity.keys import load_key
    from vmforge.identity.tokens import LocalIssuer
    import json

    creds = json.loads((server.data_dir / "identity" / "admin.json").read_text())
    token = LocalIssuer(load_key(server.data_dir), creds["issuer"], creds["tenant"]).mint(
        ident.principal_id, ident.client_id, "maker", "https://management.azure.com/")[0]
    from tests.conftest import StaticToken
    from azure.mgmt.compute import ComputeManagementClient

    compute = ComputeManagementClient(StaticToken(token), SUBSCRIPTION, base_url=server.url,
                                      connection_verify=server.cert, retry_total=0)
    assert list(compute.galleries.list_by_resource_group(group)) == []          # allowed: galleries/read
    with pytest.raises(HttpResponseError) as e:                                 # not in the role
        compute.galleries.begin_create_or_update(group, "g1", {"location": "westus"}).result()
    assert e.value.status_code == 403 and ident.client_id in e.value.message
    with pytest.raises(HttpResponseError) as e:                                 # outside the assignment's scope
        list(compute.galleries.list_by_resource_group(other))
    assert e.value.status_code == 403

    with pytest.raises(HttpResponseError) as e:  # a used role cannot go
        client.role_definitions.delete(SUB_SCOPE, role_id)
    assert e.value.status_code == 409 and e.value.error.code == "RoleDefinitionHasAssignments"
    client.role_assignments.delete(scope, assignment.name)
    assert list(client.role_assignments.list_for_scope(scope, filter=f"principalId eq '{ident.principal_id}'")) == []
    client.role_definitions.delete(SUB_SCOPE, role_id)
    assert list(client.role_definitions.list(SUB_SCOPE, filter=f"roleName eq '{name}'")) == []


def test_assignment_refusals(server: Server) -> None:
    from azure.core.exceptions import HttpResponseError

    client = auth_client(server)
    reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    with pytest.raises(HttpResponseError) as e:
        client.role_assignments.create(SUB_SCOPE, str(uuid.uuid4()), {
            "role_definition_id": f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/{reader}",
            "principal_id": str(uuid.uuid4())})
    assert e.value.status_code == 400 and e.value.error.code == "PrincipalNotFound"
    with pytest.raises(HttpResponseError) as e:
        client.role_assignments.create(SUB_SCOPE, str(uuid.uuid4()), {
            "role_definition_id": f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}",
            "principal_id": str(uuid.uuid4())})
    assert e.value.status_code == 400 and e.value.error.code == "RoleDefinitionDoesNotExist"
    with pytest.raises(HttpResponseError) as e:
        client.role_definitions.create_or_update(SUB_SCOPE, str(uuid.uuid4()), {
            "role_name": "no scopes", "permissions": [{"actions": ["*/read"]}], "assignable_scopes": []})
    assert e.value.status_code == 400 and e.value.error.target == "properties.assignableScopes"


def test_local_role_commands_share_the_store(server: Server) -> None:
    """``vmforge role assign`` names a managed identity by resource id, and the ARM API lists what it made."""
    from tests.identity.helpers import cli

    group = _group(server, "rg-cli")
    ident = msi_client(server).user_assigned_identities.create_or_update(group, "cli-made", {"location": "westus"})
    scope = f"{SUB_SCOPE}/resourceGroups/{group}"
    made = cli(server, "role", "assign", "--assignee", ident.id, "--role", "Managed Identity Operator",
               "--scope", scope)
    assert made["principalId"] == ident.principal_id and made["roleDefinitionName"] == "Managed Identity Operator"
    listed = list(auth_client(server).role_assignments.list_for_scope(
        scope, filter=f"principalId eq '{ident.principal_id}'"))
    assert [(a.name, a.role_definition_id.rsplit("/", 1)[-1]) for a in listed] == [
        (made["id"], "f1a07417-d97a-45cb-824c-7a7467783830")]


def test_malformed_assignment_and_directory_bodies_get_400(server: Server) -> None:
    import httpx

    from tests.identity.helpers import cli

    sp = cli(server, "principal", "create", f"typed-{uuid.uuid4().hex[:4]}")
    object_id = next(p["id"] for p in cli(server, "principal", "list") if p["appId"] == sp["appId"])
    reader = f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
    with server.http() as h:
        r = h.put(f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                  params={"api-version": "2022-04-01"},
                  json={"properties": {"roleDefinitionId": reader, "principalId": object_id,
                                       "principalType": {"x": 1}}})
        assert r.status_code == 400 and r.json()["error"]["target"] == "properties.principalType", r.text
    graph = f"{server.url}/graph/"
    from tests.identity.helpers import token_for

    token = token_for(server, sp["appId"], sp["password"], scope=graph + ".default")
    r = httpx.post(graph + "v1.0/directoryObjects/getByIds", verify=server.ssl_context(), json={"ids": 5},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "Request_BadRequest"
