"""The server's Graph directory: what the Azure CLI asks to resolve ``--assignee``, with tokens of its own
audience — a Graph token opens no ARM route and an ARM token no Graph route."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import Server
from tests.identity.helpers import cli, token_for
from tests.tenancy.helpers import msi_client, resource_client


def test_directory_lookups_and_audience_separation(server: Server) -> None:
    sp = cli(server, "principal", "create", f"graph-{uuid.uuid4().hex[:4]}")
    group = f"rg-graph-{uuid.uuid4().hex[:6]}"
    resource_client(server).resource_groups.create_or_update(group, {"location": "westus"})
    ident = msi_client(server).user_assigned_identities.create_or_update(group, "looked-up", {"location": "westus"})
    meta = httpx.get(f"{server.url}/metadata/endpoints", params={"api-version": "2022-09-01"},
                     verify=server.ssl_context()).json()
    graph = meta["microsoftGraphResourceId"]
    assert graph == f"{server.url}/graph/"
    gtoken = token_for(server, sp["appId"], sp["password"], scope=graph + ".default")
    atoken = token_for(server, sp["appId"], sp["password"])

    def g(method: str, path: str, token: str, **kw) -> httpx.Response:  # noqa: ANN003
        return httpx.request(method, graph + "v1.0" + path, verify=server.ssl_context(),
                             headers={"Authorization": f"Bearer {token}"}, **kw)

    r = g("GET", "/servicePrincipals", gtoken,
          params={"$filter": f"servicePrincipalNames/any(c:c eq '{ident.client_id}')"})
    assert r.status_code == 200, r.text
    assert [(o["id"], o["servicePrincipalType"]) for o in r.json()["value"]] == [(ident.principal_id,
                                                                                  "ManagedIdentity")]
    r = g("GET", "/servicePrincipals", gtoken, params={"$filter": f"servicePrincipalNames/any(c:c eq '{sp['appId']}')"})
    assert [o["appId"] for o in r.json()["value"]] == [sp["appId"]]
    r = g("POST", "/directoryObjects/getByIds", gtoken, json={"ids": [ident.principal_id, str(uuid.uuid4())]})
    assert [o["id"] for o in r.json()["value"]] == [ident.principal_id]
    assert g("GET", "/users", gtoken, params={"$filter": "userPrincipalName eq 'a@b'"}).json()["value"] == []

    assert g("GET", "/servicePrincipals", atoken).status_code == 401          # an ARM token is no Graph token
    r = httpx.get(f"{server.url}/subscriptions", params={"api-version": "2022-12-01"}, verify=server.ssl_context(),
                  headers={"Authorization": f"Bearer {gtoken}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
