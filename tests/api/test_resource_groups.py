"""Resource groups (Microsoft.Resources/resourceGroups) driven by Microsoft's own client, azure-mgmt-resource 26
(api-version 2025-04-01), against a real vmforge server: create, get, list paged and filtered, update tags,
check existence, delete as a long-running operation that deletes what the group holds — and every kind of
resource refused (404 ResourceGroupNotFound, nothing stored) in a group that does not exist."""

from __future__ import annotations

import copy
import json
import sys
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.conftest import RESOURCES_API, Server, StaticToken, imagebuilder_client, require_tools

SUB = "0e0e0e0e-1111-2222-3333-444444444444"  # groups of this subscription are made only by this module
PAGE = 3  # the session server's --page-size


def rm_client(srv: Server, subscription: str = SUB):  # noqa: ANN201
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(StaticToken(srv.token), subscription, base_url=srv.url,
                                    connection_verify=srv.cert, retry_total=0, polling_interval=0.05)


def compute_client(srv: Server, subscription: str = SUB):  # noqa: ANN201
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(StaticToken(srv.token), subscription, base_url=srv.url,
                                   connection_verify=srv.cert, retry_total=0, polling_interval=0.05)


def msi_client(srv: Server, subscription: str = SUB):  # noqa: ANN201
    from azure.mgmt.msi import ManagedServiceIdentityClient

    return ManagedServiceIdentityClient(StaticToken(srv.token), subscription, base_url=srv.url,
                                        connection_verify=srv.cert, retry_total=0)


def cli(srv: Server, *args: str) -> object:
    out = subprocess.run([sys.executable, "-m", "vmforge.cli", *args, "--data-dir", str(srv.data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def template_body(subscription: str, group: str, identity: str) -> dict:
    return {"location": "westus", "identity": {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}},
            "properties": {
                "source": {"type": "PlatformImage", "publisher": "Canonical", "offer": "ubuntu-24_04-lts",
                           "sku": "server", "version": "latest"},
                "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
                "distribute": [{"type": "ManagedImage", "runOutputName": "out1", "location": "westus",
                                "imageId": f"/subscriptions/{subscription}/resourceGroups/{group}/providers/"
                                           "Microsoft.Compute/images/built"}]}}


def image_body(uri: str) -> dict:
    return {"location": "westus", "properties": {"hyperVGeneration": "V1", "storageProfile": {
        "osDisk": {"osType": "Linux", "osState": "Generalized", "blobUri": uri}}}}


DEFINITION = {"location": "westus", "properties": {"osType": "Linux", "osState": "Generalized",
                                                   "hyperVGeneration": "V1",
                                                   "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}


def version_body(group_id: str) -> dict:
    return {"location": "westus", "properties": {"storageProfile": {"source": {
        "id": f"{group_id}/providers/Microsoft.Compute/images/img"}}}}


def blobs(srv: Server) -> set[str]:
    return {p.name for p in (srv.data_dir / "blobs" / "sha256").glob("*/*.qcow2")}


def test_create_get_update_exists(server: Server) -> None:
    rm = rm_client(server)
    name = f"rg-{uuid.uuid4().hex[:6]}"
    assert rm.resource_groups.check_existence(name) is False
    with pytest.raises(ResourceNotFoundError) as e:
        rm.resource_groups.get(name)
    assert e.value.error.code == "ResourceGroupNotFound"
    g = rm.resource_groups.create_or_update(name, {"location": "West US", "tags": {"team": "a"}})
    assert (g.id, g.name, g.location, g.tags) == (f"/subscriptions/{SUB}/resourceGroups/{name}", name, "westus",
                                                   {"team": "a"})
    assert g.properties.provisioning_state == "Succeeded" and g.type == "Microsoft.Resources/resourceGroups"
    assert rm.resource_groups.check_existence(name.upper()) is True  # names compare without case
    got = rm.resource_groups.get(name.upper())
    assert got.name == name and got.tags == {"team": "a"}
    # A second PUT updates the tags (200) and keeps the location; a different location is ARM's 409.
    with server.http() as c:
        r = c.put(f"/subscriptions/{SUB}/resourcegroups/{name}", params={"api-version": RESOURCES_API},
                  json={"location": "westus", "tags": {"team": "b"}})
        assert r.status_code == 200 and r.json()["tags"] == {"team": "b"}
        r = c.put(f"/subscriptions/{SUB}/resourcegroups/{name}", params={"api-version": RESOURCES_API},
                  json={"location": "eastus"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "InvalidResourceGroupLocation"
    updated = rm.resource_groups.update(name, {"tags": {"env": "prod", "team": "c"}})
    assert updated.tags == {"env": "prod", "team": "c"}
    assert rm.resource_groups.get(name).tags == {"env": "prod", "team": "c"}
    with pytest.raises(ResourceNotFoundError):
        rm.resource_groups.update(f"{name}-missing", {"tags": {"a": "b"}})


@pytest.mark.parametrize("body,code", [
    ({}, "LocationRequired"),
    ({"location": ""}, "LocationRequired"),
    ({"location": "westus", "tags": {"a": 1}}, "InvalidRequestContent"),
    ({"location": "westus", "tags": {"a/b": "x"}}, "InvalidTagNameCharacters"),
    ({"location": "westus", "tags": {"a": "x" * 257}}, "InvalidTagValueLength"),
    ({"location": "westus", "tags": {f"t{i}": "x" for i in range(51)}}, "InvalidTagCount"),
    ([], "InvalidRequestContent"),
])
def test_bad_bodies_are_400_and_store_nothing(server: Server, body: object, code: str) -> None:
    name = f"rg-bad-{uuid.uuid4().hex[:6]}"
    with server.http() as c:
        r = c.put(f"/subscriptions/{SUB}/resourceGroups/{name}", params={"api-version": RESOURCES_API}, json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == code
        assert c.head(f"/subscriptions/{SUB}/resourceGroups/{name}",
                      params={"api-version": RESOURCES_API}).status_code == 404


def test_bad_names_and_filters_are_400(server: Server) -> None:
    with server.http() as c:
        for name in ("ends-with-dot.", "has space", "x" * 91):
            r = c.put(f"/subscriptions/{SUB}/resourceGroups/{name}", params={"api-version": RESOURCES_API},
                      json={"location": "westus"})
            assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidResourceGroupName", name
        r = c.get(f"/subscriptions/{SUB}/resourcegroups", params={"api-version": RESOURCES_API,
                                                                   "$filter": "name eq 'x'"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidFilterInQueryString"
        r = c.get(f"/subscriptions/{SUB}/resourcegroups", params={"api-version": RESOURCES_API, "$top": "0"})
        assert r.status_code == 400
        r = c.get(f"/subscriptions/{SUB}/resourcegroups/x", params={})
        assert r.status_code == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"


def test_list_pages_and_filters(server: Server) -> None:
    sub = str(uuid.uuid4())
    rm = rm_client(server, sub)
    names = [f"rg-list-{i}" for i in range(7)]
    for i, n in enumerate(names):
        rm.resource_groups.create_or_update(n, {"location": "westus", "tags": {"parity": "odd" if i % 2 else "even",
                                                                                "Index": str(i)}})
    # The raw pages: --page-size 3, each with a nextLink to the next, the last without.
    with server.http() as c:
        url: str | None = f"/subscriptions/{sub}/resourcegroups?api-version={RESOURCES_API}"
        sizes = []
        while url:
            page = c.get(url).json()
            sizes.append(len(page["value"]))
            url = page.get("nextLink")
            assert url is None or url.startswith(server.url + f"/subscriptions/{sub}/resourceGroups?")
        assert sizes == [PAGE, PAGE, 1]
    assert [g.name for g in rm.resource_groups.list()] == names  # the SDK pager follows nextLink
    assert [g.name for g in rm.resource_groups.list(filter="tagName eq 'parity' and tagValue eq 'odd'")] == \
        names[1::2]
    assert [g.name for g in rm.resource_groups.list(filter="tagname eq 'index'")] == names  # names: any case
    assert [g.name for g in rm.resource_groups.list(filter="tagName eq 'Index' and tagValue eq '4'")] == [names[4]]
    assert list(rm.resource_groups.list(filter="tagName eq 'parity' and tagValue eq 'ODD'")) == []  # values: exact
    assert [g.name for g in rm.resource_groups.list(top=4)] == names[:4]  # $top caps the whole list
    assert list(rm_client(server, str(uuid.uuid4())).resource_groups.list()) == []


def test_missing_group_refuses_every_kind_and_stores_nothing(server: Server) -> None:
    group = f"rg-none-{uuid.uuid4().hex[:6]}"
    rg_id = f"/subscriptions/{SUB}/resourceGroups/{group}"
    compute, msi = compute_client(server), msi_client(server)
    attempts = {
        "identity": lambda: msi.user_assigned_identities.create_or_update(group, "id1", {"location": "westus"}),
        "template": lambda: imagebuilder_client(server, subscription=SUB).virtual_machine_image_templates
        .begin_create_or_update(group, "tpl", template_body(SUB, group, f"{rg_id}/providers/"
                                "Microsoft.ManagedIdentity/userAssignedIdentities/id1")).result(),
        "image": lambda: compute.images.begin_create_or_update(group, "img", image_body(
            (server.data_dir / "imports" / "none.raw").as_uri())).result(),
        "gallery": lambda: compute.galleries.begin_create_or_update(group, "gal", {"location": "westus"}).result(),
        "definition": lambda: compute.gallery_images.begin_create_or_update(group, "gal", "def", DEFINITION)
        .result(),
        "version": lambda: compute.gallery_image_versions.begin_create_or_update(group, "gal", "def", "1.0.0",
                                                                               version_body(rg_id)).result(),
    }
    for kind, attempt in attempts.items():
        with pytest.raises(HttpResponseError) as e:
            attempt()
        assert e.value.status_code == 404, (kind, e.value.message)
        assert e.value.error.code == "ResourceGroupNotFound", (kind, e.value.message)
        assert f"Resource group '{group}' could not be found." in e.value.message
    # Nothing was stored: once the group exists, none of them is there.
    server.ensure_group(SUB, group)
    with pytest.raises(ResourceNotFoundError):
        msi.user_assigned_identities.get(group, "id1")
    with pytest.raises(ResourceNotFoundError):
        imagebuilder_client(server, subscription=SUB).virtual_machine_image_templates.get(group, "tpl")
    with pytest.raises(ResourceNotFoundError):
        compute.images.get(group, "img")
    with pytest.raises(ResourceNotFoundError):
        compute.galleries.get(group, "gal")


def test_delete_deletes_what_the_group_holds(server: Server) -> None:
    require_tools("qemu-img")
    from tests.artifacts.conftest import make_raw

    rm, compute, msi = rm_client(server), compute_client(server), msi_client(server)
    ib = imagebuilder_client(server, subscription=SUB)
    group, other = f"rg-del-{uuid.uuid4().hex[:6]}", f"rg-keep-{uuid.uuid4().hex[:6]}"
    rm.resource_groups.create_or_update(group, {"location": "westus"})
    rm.resource_groups.create_or_update(other, {"location": "westus"})
    ident = msi.user_assigned_identities.create_or_update(group, "builder", {"location": "westus"})
    kept_ident = msi.user_assigned_identities.create_or_update(other, "builder", {"location": "westus"})
    ib.virtual_machine_image_templates.begin_create_or_update(group, "tpl", template_body(SUB, group, ident.id)) \
        .result()
    ib.virtual_machine_image_templates.begin_create_or_update(other, "tpl", template_body(SUB, other,
                                                                                          kept_ident.id)).result()
    before = blobs(server)
    disk = make_raw(server.data_dir / "imports" / f"{group}.raw", seed=uuid.uuid4().int % 10_000)
    compute.images.begin_create_or_update(group, "img", image_body(disk.as_uri())).result()
    compute.galleries.begin_create_or_update(group, "gal", {"location": "westus"}).result()
    compute.gallery_images.begin_create_or_update(group, "gal", "def", DEFINITION).result()
    compute.gallery_image_versions.begin_create_or_update(group, "gal", "def", "1.0.0", version_body(
        f"/subscriptions/{SUB}/resourceGroups/{group}")).result()
    assert len(blobs(server) - before) == 1  # the version shares the image's disk
    scope = f"/subscriptions/{SUB}/resourceGroups/{group}"
    sp = cli(server, "principal", "create", f"rg-reader-{group}", "--role", "Reader", "--scope", scope)
    cli(server, "role", "assign", "--assignee", sp["appId"], "--role", "Reader", "--scope",
        f"{scope}/providers/Microsoft.Compute/images/img")
    cli(server, "role", "assign", "--assignee", sp["appId"], "--role", "Reader", "--scope",
        f"/subscriptions/{SUB}/resourceGroups/{other}")

    poller = rm.resource_groups.begin_delete(group)  # ARM's LRO: 202, then its Location polled until 200
    assert poller.result() is None and poller.status() == "Succeeded"

    assert rm.resource_groups.check_existence(group) is False
    with pytest.raises(ResourceNotFoundError):
        ib.virtual_machine_image_templates.get(group, "tpl")
    with pytest.raises(ResourceNotFoundError):
        compute.images.get(group, "img")
    with pytest.raises(ResourceNotFoundError):
        compute.galleries.get(group, "gal")
    with pytest.raises(ResourceNotFoundError):
        msi.user_assigned_identities.get(group, "builder")
    assert blobs(server) == before  # the disk was released with its last reference
    left = [a["scope"] for a in cli(server, "role", "list", "--assignee", sp["appId"])]
    assert left == [f"/subscriptions/{SUB}/resourceGroups/{other}"]
    # The other group keeps all it holds; the deleted one is missing for new resources too.
    assert ib.virtual_machine_image_templates.get(other, "tpl").name == "tpl"
    assert msi.user_assigned_identities.get(other, "builder").principal_id == kept_ident.principal_id
    with pytest.raises(ResourceNotFoundError) as e:
        rm.resource_groups.begin_delete(group).result()
    assert e.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(HttpResponseError) as e:
        compute.galleries.begin_create_or_update(group, "gal", {"location": "westus"}).result()
    assert e.value.status_code == 404 and e.value.error.code == "ResourceGroupNotFound"
    # A group of the same name can be made again, empty.
    rm.resource_groups.create_or_update(group, {"location": "eastus"})
    assert list(ib.virtual_machine_image_templates.list_by_resource_group(group)) == []


def test_rbac_actions(server: Server) -> None:
    """Reader at a group reads it but cannot change or delete it; Contributor at the subscription can."""
    from tests.identity.helpers import client, principal

    group = f"rg-rbac-{uuid.uuid4().hex[:6]}"
    server.ensure_group(SUB, group)
    scope = f"/subscriptions/{SUB}/resourceGroups/{group}"
    reader = principal(server, "Reader", scope)
    params = {"api-version": RESOURCES_API}
    with client(server, reader["token"]) as c:
        assert c.get(scope, params=params).status_code == 200
        r = c.put(scope, params=params, json={"location": "westus", "tags": {"a": "b"}})
        assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed"
        assert c.delete(scope, params=params).status_code == 403
    contributor = principal(server, "Contributor", f"/subscriptions/{SUB}")
    with client(server, contributor["token"]) as c:
        assert c.patch(scope, params=params, json={"tags": {"a": "b"}}).json()["tags"] == {"a": "b"}
        r = c.delete(scope, params=params)
        assert r.status_code == 202, r.text
        assert r.headers["Location"].startswith(f"{server.url}/subscriptions/{SUB}/operationresults/")
        assert r.headers["Retry-After"] == "1"
        deadline = time.monotonic() + 20
        while (poll := c.get(r.headers["Location"])).status_code == 202 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert poll.status_code == 200
        assert c.head(scope, params=params).status_code == 404
