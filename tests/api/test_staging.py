"""A template's staging resource group, driven through Microsoft's clients: created per template (``IT_…``) when
none is given, created with the given name when it does not exist, used as it is when it exists and is empty —
deleted with the template only when the service created it; ``managedResourceTags`` on what the service creates;
the template's identity made Contributor there; ARM's generic list of a group's resources."""

from __future__ import annotations

import copy
import re
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.conftest import SUBSCRIPTION, Server, StaticToken, free_port, imagebuilder_client, load_example

TAGS = {"costCenter": "imaging", "owner": "team-a"}


def resources(srv: Server):  # noqa: ANN201
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(StaticToken(srv.token), SUBSCRIPTION, base_url=srv.url,
                                    connection_verify=srv.cert, retry_total=0, polling_interval=0.2)


def body(**props) -> dict:  # noqa: ANN003
    b = copy.deepcopy(load_example("2025-10-01", "CreateImageTemplateLinux")["parameters"]["parameters"])
    b["properties"].update(props)
    return b


def group(srv: Server) -> str:
    name = f"rg-{uuid.uuid4().hex[:8]}"
    srv.ensure_group(SUBSCRIPTION, name)
    return name


def group_id(name: str, subscription: str = SUBSCRIPTION) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{name}"


def test_generated_group_is_created_tagged_and_deleted_with_the_template(server: Server) -> None:
    ib, arm = imagebuilder_client(server), resources(server)
    rg, name = group(server), f"t{uuid.uuid4().hex[:6]}"
    t = ib.virtual_machine_image_templates.begin_create_or_update(rg, name, body(managedResourceTags=TAGS)).result()
    m = re.fullmatch(rf"/subscriptions/{SUBSCRIPTION}/resourceGroups/(IT_{rg}_{name}_[0-9a-f-]{{36}})",
                     t.exact_staging_resource_group)
    assert m, t.exact_staging_resource_group
    assert t.staging_resource_group is None  # the read-only field differs only when none was given
    staged = arm.resource_groups.get(m.group(1))
    assert staged.location == t.location
    assert staged.tags == {"createdBy": "AzureVMImageBuilder", "imageTemplateName": name,
                           "imageTemplateResourceGroupName": rg, **TAGS}
    assert staged.managed_by.lower().endswith(f"/imagetemplates/{name.lower()}")
    # AIB makes the template's identity Contributor on the group it creates.
    with server.http() as h:
        ident = h.get(next(iter(t.identity.user_assigned_identities)), params={"api-version": "2023-01-31"}).json()
        principal = ident["properties"]["principalId"]
        r = h.get(f"{staged.id}/providers/Microsoft.Authorization/roleAssignments",
                  params={"api-version": "2022-04-01", "$filter": f"principalId eq '{principal}'"})
    assert r.status_code == 200, r.text
    at_group = [a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1] for a in r.json()["value"]
                if a["properties"]["scope"].lower() == staged.id.lower()]
    assert at_group == ["b24988ac-6180-42a0-ab88-20f7382dd24c"]
    assert list(arm.resources.list_by_resource_group(m.group(1))) == []
    ib.virtual_machine_image_templates.begin_delete(rg, name).result()
    assert not arm.resource_groups.check_existence(m.group(1))


def test_given_group_that_does_not_exist_is_created_and_deleted_with_the_template(server: Server) -> None:
    ib, arm = imagebuilder_client(server), resources(server)
    rg, name, staging = group(server), "tgiven", f"staging-{uuid.uuid4().hex[:6]}"
    t = ib.virtual_machine_image_templates.begin_create_or_update(
        rg, name, body(stagingResourceGroup=group_id(staging))).result()
    assert t.staging_resource_group == t.exact_staging_resource_group == group_id(staging)
    assert arm.resource_groups.get(staging).tags["imageTemplateName"] == name
    ib.virtual_machine_image_templates.begin_delete(rg, name).result()
    assert not arm.resource_groups.check_existence(staging)


def test_given_existing_empty_group_is_used_and_outlives_the_template(server: Server) -> None:
    ib, arm = imagebuilder_client(server), resources(server)
    rg, staging = group(server), group(server)
    arm.resource_groups.create_or_update(staging, {"location": "westus", "tags": {"mine": "yes"}})
    t = ib.virtual_machine_image_templates.begin_create_or_update(
        rg, "tuse", body(stagingResourceGroup=group_id(staging), managedResourceTags=TAGS)).result()
    assert t.exact_staging_resource_group == group_id(staging)
    assert arm.resource_groups.get(staging).tags == {"mine": "yes"}  # the user's group keeps its own tags
    # A second template cannot share it.
    with pytest.raises(HttpResponseError) as e:
        ib.virtual_machine_image_templates.begin_create_or_update(
            rg, "tshare", body(stagingResourceGroup=group_id(staging))).result()
    assert e.value.status_code == 409 and e.value.error.code == "StagingResourceGroupInUse"
    with pytest.raises(ResourceNotFoundError):
        ib.virtual_machine_image_templates.get(rg, "tshare")
    ib.virtual_machine_image_templates.begin_delete(rg, "tuse").result()
    assert arm.resource_groups.get(staging).name == staging


def test_given_group_that_holds_something_is_refused_and_nothing_is_stored(server: Server) -> None:
    ib, arm = imagebuilder_client(server), resources(server)
    rg, staging = group(server), group(server)
    server.ensure_identity(SUBSCRIPTION, staging, "someone")
    listed = [(r.type, r.name) for r in arm.resources.list_by_resource_group(staging)]
    assert listed == [("Microsoft.ManagedIdentity/userAssignedIdentities", "someone")]
    with pytest.raises(HttpResponseError) as e:
        ib.virtual_machine_image_templates.begin_create_or_update(
            rg, "tfull", body(stagingResourceGroup=group_id(staging))).result()
    assert e.value.status_code == 409
    assert e.value.error.code == "StagingResourceGroupNotEmpty"
    assert "someone" in e.value.error.message
    with pytest.raises(ResourceNotFoundError):
        ib.virtual_machine_image_templates.get(rg, "tfull")


@pytest.mark.parametrize("where,why", [
    ("other-subscription", "subscription of the image template"),
    ("other-location", "location"),
    ("own-group", "own resource group"),
])
def test_unusable_given_groups_get_400(server: Server, where: str, why: str) -> None:
    ib, arm = imagebuilder_client(server), resources(server)
    rg = group(server)
    if where == "other-subscription":
        gid = group_id("elsewhere", "11111111-2222-3333-4444-555555555555")
    elif where == "other-location":
        far = f"far-{uuid.uuid4().hex[:6]}"
        arm.resource_groups.create_or_update(far, {"location": "eastus"})
        gid = group_id(far)
    else:
        gid = group_id(rg)
    with pytest.raises(HttpResponseError) as e:
        ib.virtual_machine_image_templates.begin_create_or_update(rg, "tbad", body(stagingResourceGroup=gid)).result()
    assert e.value.status_code == 400
    assert e.value.error.code == "InvalidStagingResourceGroup"
    assert e.value.error.target == "properties.stagingResourceGroup"
    assert why in e.value.error.message


def test_generic_resource_list_shows_what_a_group_holds(server: Server) -> None:
    ib, arm = imagebuilder_client(server), resources(server)
    rg = group(server)
    ib.virtual_machine_image_templates.begin_create_or_update(rg, "tlisted", body()).result()
    server.ensure_identity(SUBSCRIPTION, rg, "ident-listed")
    got = sorted((r.type, r.name) for r in arm.resources.list_by_resource_group(rg))
    assert got == [("Microsoft.ManagedIdentity/userAssignedIdentities", "ident-listed"),
                   ("Microsoft.VirtualMachineImages/imageTemplates", "tlisted")]
    with pytest.raises(ResourceNotFoundError):
        list(arm.resources.list_by_resource_group(f"nope-{uuid.uuid4().hex[:6]}"))


def test_staging_group_cannot_change_on_update(tmp_path) -> None:  # noqa: ANN001
    srv = Server(tmp_path / "data", free_port(), ["--allow-template-updates"])
    srv.start()
    try:
        ib = imagebuilder_client(srv)
        rg = group(srv)
        first = ib.virtual_machine_image_templates.begin_create_or_update(rg, "tupd", body()).result()
        changed = body(stagingResourceGroup=group_id(f"new-{uuid.uuid4().hex[:6]}"))
        with pytest.raises(HttpResponseError) as e:
            ib.virtual_machine_image_templates.begin_create_or_update(rg, "tupd", changed).result()
        assert e.value.status_code == 400 and e.value.error.target == "properties.stagingResourceGroup"
        # managedResourceTags may change: the service's group follows them.
        ib.virtual_machine_image_templates.begin_create_or_update(
            rg, "tupd", body(managedResourceTags={"v": "2"})).result()
        staged = first.exact_staging_resource_group.rsplit("/", 1)[-1]
        assert resources(srv).resource_groups.get(staged).tags["v"] == "2"
    finally:
        srv.stop()


@pytest.mark.parametrize("props,target", [
    ({"stagingResourceGroup": group_id("a" * 91)}, "properties.stagingResourceGroup"),
    ({"stagingResourceGroup": group_id("bad%name")}, "properties.stagingResourceGroup"),
    ({"managedResourceTags": {"a/b": "x"}}, "properties.managedResourceTags['a/b']"),
    ({"managedResourceTags": {"a": "x" * 257}}, "properties.managedResourceTags['a']"),
    ({"managedResourceTags": {f"t{i}": "x" for i in range(48)}}, "properties.managedResourceTags"),
])
def test_bad_staging_group_names_and_managed_tags_get_400_at_their_path(server: Server, props: dict,
                                                                         target: str) -> None:
    """The group's name must be one ARM allows, and managedResourceTags must make valid tags on it — with room
    for AIB's three (47 at most): nothing is created otherwise."""
    ib, arm = imagebuilder_client(server), resources(server)
    rg = group(server)
    before = {g.name for g in arm.resource_groups.list()}
    with pytest.raises(HttpResponseError) as e:
        ib.virtual_machine_image_templates.begin_create_or_update(rg, "tbadtags", body(**props)).result()
    assert e.value.status_code == 400
    err = e.value.error
    assert target in {err.target, *(d.target for d in (err.details or []))}, (err.target, err.message)
    with pytest.raises(ResourceNotFoundError):
        ib.virtual_machine_image_templates.get(rg, "tbadtags")
    assert {g.name for g in arm.resource_groups.list()} == before
