"""The build VM's metadata service (vmforge.identity.imds), without a VM: Azure's token answer and errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vmforge.identity.imds import VMInfo, create_app, issuer_for, select
from vmforge.identity.keys import ensure_key
from vmforge.identity.managed import Identity
from vmforge.identity.tokens import LocalIssuer, TokenVerifier
from vmforge.settings import Settings

SUB = "00000000-0000-0000-0000-00000000f0f0"
ONE = Identity(SUB, "rg1", "builder", "westus", "11111111-1111-4111-8111-111111111111",
               "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "t")
TWO = Identity(SUB, "rg1", "other", "westus", "22222222-2222-4222-8222-222222222222",
               "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", "t")
VM = VMInfo("vmforge-build", "westus", SUB, "IT_rg1_tmpl", "Standard_D2ds_v4")
TOKEN = "/metadata/identity/oauth2/token"
ARM = "https://management.azure.com/"
H = {"Metadata": "true"}


@pytest.fixture
def issuer(tmp_path: Path) -> LocalIssuer:
    return LocalIssuer(ensure_key(tmp_path), "https://127.0.0.1:8443/t/v2.0", "t", 3600)


def client(issuer: LocalIssuer, identities: list[Identity]) -> TestClient:
    return TestClient(create_app(identities, issuer, VM))


def test_token_for_the_named_identity_is_verifiable(issuer: LocalIssuer) -> None:
    c = client(issuer, [ONE, TWO])
    before = int(time.time())
    r = c.get(TOKEN, params={"api-version": "2018-02-01", "resource": ARM, "client_id": TWO.client_id.upper()},
              headers=H)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert sorted(body) == ["access_token", "client_id", "expires_in", "expires_on", "ext_expires_in",
                            "not_before", "resource", "token_type"]
    assert all(isinstance(v, str) for v in body.values())
    assert body["client_id"] == TWO.client_id and body["resource"] == ARM and body["token_type"] == "Bearer"
    assert body["expires_in"] == "3600" and before <= int(body["not_before"]) <= int(time.time())
    assert int(body["expires_on"]) == int(body["not_before"]) + 3600
    ident = TokenVerifier(issuer).verify(body["access_token"])
    assert (ident.object_id, ident.app_id, ident.local) == (TWO.principal_id, TWO.client_id, True)


@pytest.mark.parametrize("selector", [{"object_id": ONE.principal_id}, {"mi_res_id": ONE.id.lower()},
                                      {"msi_res_id": ONE.id}, {"principal_id": ONE.principal_id}])
def test_other_selectors(issuer: LocalIssuer, selector: dict[str, str]) -> None:
    r = client(issuer, [ONE, TWO]).get(TOKEN, params={"api-version": "2019-08-01", "resource": ARM, **selector},
                                       headers=H)
    assert r.status_code == 200 and r.json()["client_id"] == ONE.client_id


def test_without_selector(issuer: LocalIssuer) -> None:
    params = {"api-version": "2018-02-01", "resource": "https://management.core.windows.net"}
    r = client(issuer, [ONE]).get(TOKEN, params=params, headers=H)
    assert r.status_code == 200 and r.json()["client_id"] == ONE.client_id
    r = client(issuer, [ONE, TWO]).get(TOKEN, params=params, headers=H)
    assert r.status_code == 400 and "Multiple user assigned identities" in r.json()["error_description"]
    r = client(issuer, []).get(TOKEN, params=params, headers=H)
    assert r.status_code == 400 and r.json() == {"error": "invalid_request", "error_description": "Identity not found"}


@pytest.mark.parametrize("params,headers,status,body", [
    ({"api-version": "2018-02-01", "resource": ARM, "client_id": "cccccccc-cccc-4ccc-8ccc-cccccccccccc"}, H, 400,
     {"error": "invalid_request", "error_description": "Identity not found"}),
    ({"api-version": "2018-02-01", "resource": ARM, "client_id": ONE.client_id}, {}, 400,
     {"error": "bad_request_102", "error_description": "Required metadata header not specified"}),
    ({"api-version": "2018-02-01", "resource": ARM, "client_id": ONE.client_id}, {"Metadata": "false"}, 400,
     {"error": "bad_request_102", "error_description": "Required metadata header not specified"}),
    ({"api-version": "2018-02-01", "client_id": ONE.client_id}, H, 400,
     {"error": "invalid_request", "error_description": "Required audience parameter not specified"}),
])
def test_token_errors(issuer: LocalIssuer, params: dict, headers: dict, status: int, body: dict) -> None:
    r = client(issuer, [ONE]).get(TOKEN, params=params, headers=headers)
    assert (r.status_code, r.json()) == (status, body)


def test_token_bad_resource_version_and_proxy(issuer: LocalIssuer) -> None:
    c = client(issuer, [ONE])
    r = c.get(TOKEN, params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"}, headers=H)
    assert r.status_code == 400 and r.json()["error"] == "invalid_resource" and "vault.azure.net" in r.text
    for version in ({"api-version": "2099-01-01"}, {}):
        r = c.get(TOKEN, params={**version, "resource": ARM}, headers=H)
        assert r.status_code == 400 and "api-version" in r.json()["error"] and r.json()["newest-versions"]
    r = c.get(TOKEN, params={"api-version": "2018-02-01", "resource": ARM},
              headers={**H, "X-Forwarded-For": "10.0.0.1"})
    assert r.status_code == 400 and "X-Forwarded-For" in r.json()["error"]


def test_instance_document_and_unknown_paths(issuer: LocalIssuer) -> None:
    c = client(issuer, [ONE])
    r = c.get("/metadata/instance", params={"api-version": "2021-02-01"}, headers=H)
    assert r.status_code == 200
    compute = r.json()["compute"]
    assert (compute["name"], compute["location"], compute["subscriptionId"], compute["vmSize"]) == \
        ("vmforge-build", "westus", SUB, "Standard_D2ds_v4")
    assert c.get("/metadata/instance", params={"api-version": "2021-02-01"}).status_code == 400
    assert c.get("/metadata/instance", headers=H).status_code == 400
    assert c.get("/metadata/scheduledevents", params={"api-version": "2020-07-01"}, headers=H).status_code == 404


def test_select_rejects_two_selectors() -> None:
    assert "Only one" in str(select([ONE], {"client_id": ONE.client_id, "object_id": ONE.principal_id}))


def test_issuer_for_settings(tmp_path: Path) -> None:
    key = ensure_key(tmp_path)
    iss = issuer_for(Settings(data_dir=tmp_path, insecure_http=True, port=9999))
    assert iss.key.kid == key.kid and iss.issuer.startswith("http://127.0.0.1:9999/")
