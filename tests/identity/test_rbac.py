"""Role-based access control on the wire: Reader, Contributor, Image Builder Operator and no role at all,
at subscription and resource-group scope; another subscription is out of reach."""

from __future__ import annotations

import copy
import time
import uuid

import pytest

from tests.api.test_http import body as template_body, tpl_url, wait_op
from tests.conftest import SUBSCRIPTION, Server
from tests.identity.helpers import cli, client, principal

V = "2025-10-01"
OTHER_SUB = "99999999-1111-2222-3333-444444444444"
P = {"api-version": V}


@pytest.fixture(scope="module")
def template(server: Server) -> tuple[str, str]:
    """A template made by the admin: (resource group, name)."""
    group = f"rg-rbac-{uuid.uuid4().hex[:6]}"
    server.ensure_group(SUBSCRIPTION, group)
    with server.http() as http:
        r = http.put(tpl_url(group, "t"), params=P, json=template_body())
        assert r.status_code == 201, r.text
        wait_op(http, r.headers["Azure-AsyncOperation"])
    return group, "t"


def assert_forbidden(r, action: str, sp: dict) -> None:  # noqa: ANN001
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "AuthorizationFailed"
    assert err["message"].startswith(f"The client '{sp['appId']}' with object id '{sp['objectId']}' does not have "
                                     f"authorization to perform action '{action}' over scope '/subscriptions/")
    assert "or the scope is invalid." in err["message"]


def test_reader_reads_but_cannot_write_run_or_delete(server: Server, template: tuple[str, str]) -> None:
    group, name = template
    sp = principal(server, "Reader", f"/subscriptions/{SUBSCRIPTION}")
    url = tpl_url(group, name)
    with client(server, sp["token"]) as http:
        assert http.get(url, params=P).status_code == 200
        assert http.get(f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.VirtualMachineImages/imageTemplates",
                        params=P).status_code == 200
        assert http.get(url + "/runOutputs", params=P).status_code == 200
        assert_forbidden(http.put(tpl_url(group, "new"), params=P, json=template_body()),
                         "Microsoft.VirtualMachineImages/imageTemplates/write", sp)
        assert_forbidden(http.patch(url, params=P, json={"tags": {"a": "b"}}),
                         "Microsoft.VirtualMachineImages/imageTemplates/write", sp)
        assert_forbidden(http.delete(url, params=P), "Microsoft.VirtualMachineImages/imageTemplates/delete", sp)
        assert_forbidden(http.post(url + "/run", params=P), "Microsoft.VirtualMachineImages/imageTemplates/run/action",
                         sp)
        assert_forbidden(http.post(url + "/cancel", params=P),
                         "Microsoft.VirtualMachineImages/imageTemplates/cancel/action", sp)
        assert_forbidden(http.put(url + "/triggers/t", params=P, json={"properties": {"kind": "SourceImage"}}),
                         "Microsoft.VirtualMachineImages/imageTemplates/triggers/write", sp)
        r = http.put(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Compute/galleries/g",
                     params={"api-version": "2024-03-03"}, json={"location": "westus"})
        assert_forbidden(r, "Microsoft.Compute/galleries/write", sp)
        # Nothing of another subscription.
        assert_forbidden(http.get(tpl_url(group, name, OTHER_SUB), params=P),
                         "Microsoft.VirtualMachineImages/imageTemplates/read", sp)
        assert_forbidden(http.get(f"/subscriptions/{OTHER_SUB}/providers/Microsoft.VirtualMachineImages/"
                                  "imageTemplates", params=P),
                         "Microsoft.VirtualMachineImages/imageTemplates/read", sp)
        subs = http.get("/subscriptions", params={"api-version": "2022-12-01"}).json()["value"]
        assert [s["subscriptionId"] for s in subs] == [SUBSCRIPTION]
    with server.http() as admin:
        assert admin.get(url, params=P).status_code == 200  # nothing was deleted


def test_no_assignment_is_403_everywhere(server: Server, template: tuple[str, str]) -> None:
    group, name = template
    sp = principal(server)
    with client(server, sp["token"]) as http:
        assert_forbidden(http.get(tpl_url(group, name), params=P), "Microsoft.VirtualMachineImages/imageTemplates/read",
                         sp)
        assert_forbidden(http.get(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}",
                                  params={"api-version": "2024-11-01"}),
                         "Microsoft.Resources/subscriptions/resourceGroups/read", sp)


def test_contributor_at_resource_group_scope(server: Server) -> None:
    group = f"rg-c-{uuid.uuid4().hex[:6]}"
    server.ensure_group(SUBSCRIPTION, group)
    sp = principal(server, "Contributor", f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}")
    # The template names an identity of the group (a Contributor there may assign it; one elsewhere it may not).
    mine = template_body()
    mine["identity"]["userAssignedIdentities"] = {server.ensure_identity(SUBSCRIPTION, group, "grp-id")["id"]: {}}
    with client(server, sp["token"]) as http:
        r = http.put(tpl_url(group, "mine"), params=P, json=mine)
        assert r.status_code == 201, r.text
        # The operation status lives at subscription scope; a role below it is enough to poll it.
        assert wait_op(http, r.headers["Azure-AsyncOperation"])["status"] == "Succeeded"
        assert http.get(tpl_url(group, "mine"), params=P).json()["properties"]["provisioningState"] == "Succeeded"
        assert_forbidden(http.put(tpl_url(group + "-other", "x"), params=P, json=template_body()),
                         "Microsoft.VirtualMachineImages/imageTemplates/write", sp)
        assert_forbidden(http.get(f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.VirtualMachineImages/"
                                  "imageTemplates", params=P),
                         "Microsoft.VirtualMachineImages/imageTemplates/read", sp)
        rg = http.get(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}", params={"api-version": "2024-11-01"})
        assert rg.status_code == 200 and rg.json()["location"]
        assert http.delete(tpl_url(group, "mine"), params=P).status_code == 202


def test_image_builder_operator_runs_but_does_not_write(server: Server, template: tuple[str, str]) -> None:
    group, name = template
    sp = principal(server, "Image Builder Operator", f"/subscriptions/{SUBSCRIPTION}")
    with client(server, sp["token"]) as http:
        assert http.get(tpl_url(group, name), params=P).status_code == 200
        # run/action is the Operator's: the run is accepted (202 and the run operation to poll).
        r = http.post(tpl_url(group, name) + "/run", params=P)
        assert r.status_code == 202, r.text
        changed = copy.deepcopy(template_body())
        assert_forbidden(http.put(tpl_url(group, "op-new"), params=P, json=changed),
                         "Microsoft.VirtualMachineImages/imageTemplates/write", sp)
        assert_forbidden(http.delete(tpl_url(group, name), params=P),
                         "Microsoft.VirtualMachineImages/imageTemplates/delete", sp)
        # The run acts as the template's identity, which holds no role where the example's source lies: it fails
        # at once, before any VM, saying so (tests/tenancy/test_boundaries.py covers that refusal in full).
        op = wait_op(http, r.headers["Azure-AsyncOperation"], timeout=60)
        assert op["status"] == "Failed" and op["error"]["code"] == "AuthorizationFailed", op
        assert "identity_1" in op["error"]["message"] and "Microsoft.Compute/images/read" in op["error"]["message"]
        # cancel/action is the Operator's too: past authorization, the service answers that nothing is running.
        c = http.post(tpl_url(group, name) + "/cancel", params=P)
        assert c.status_code == 409, c.text
        assert c.json()["error"] == {"code": "Conflict", "message": f"The image template '{name}' has no run in "
                                     "progress to cancel.", "target": None, "details": []}


def test_role_assign_and_remove_take_effect(server: Server, template: tuple[str, str]) -> None:
    group, name = template
    sp = principal(server)
    with client(server, sp["token"]) as http:
        assert http.get(tpl_url(group, name), params=P).status_code == 403
        a = cli(server, "role", "assign", "--assignee", sp["appId"], "--role", "reader", "--scope",
                f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}")
        assert a["roleDefinitionName"] == "Reader"
        time.sleep(1.2)
        assert http.get(tpl_url(group, name), params=P).status_code == 200
        listed = cli(server, "role", "list", "--assignee", sp["appId"])
        assert [x["scope"] for x in listed] == [f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}"]
        assert cli(server, "role", "remove", "--ids", a["id"])["removed"] == 1
        time.sleep(1.2)
        assert http.get(tpl_url(group, name), params=P).status_code == 403


def test_meta_routes_for_the_azure_cli(server: Server) -> None:
    with server.http() as http:
        subs = http.get("/subscriptions", params={"api-version": "2022-12-01"}).json()
        assert subs["value"] and all(s["state"] == "Enabled" and s["tenantId"] for s in subs["value"])
        tenants = http.get("/tenants", params={"api-version": "2022-12-01"}).json()["value"]
        assert tenants[0]["tenantId"] == subs["value"][0]["tenantId"]
        locs = http.get(f"/subscriptions/{SUBSCRIPTION}/locations", params={"api-version": "2022-12-01"}).json()
        assert "westus" in {loc["name"] for loc in locs["value"]}
        missing = http.get(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/myrg", params={"api-version": "2024-11-01"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceGroupNotFound"
        server.ensure_group(SUBSCRIPTION, "myrg", "West Europe")
        rg = http.get(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/myrg", params={"api-version": "2024-11-01"})
        assert rg.status_code == 200 and rg.json()["location"] == "westeurope" and rg.json()["name"] == "myrg"
