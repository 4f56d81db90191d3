"""The local OAuth2 issuer: discovery, JWKS, client_credentials, and its errors."""

from __future__ import annotations

import base64
import stat

import httpx
import jwt
import pytest

from tests.conftest import Server
from tests.identity.helpers import ARM, cli, principal, tenant


def test_discovery_and_jwks(server: Server) -> None:
    t = tenant(server)
    with httpx.Client(base_url=server.url, verify=server.ssl_context()) as http:
        doc = http.get(f"/{t}/v2.0/.well-known/openid-configuration").json()
        assert doc["token_endpoint"] == f"{server.url}/{t}/oauth2/v2.0/token"
        assert doc["issuer"] == f"{server.url}/{t}/v2.0"
        assert {"authorization_endpoint", "jwks_uri"} <= set(doc)
        keys = http.get(doc["jwks_uri"]).json()["keys"]
        assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256"
        assert http.get("/nope-tenant/v2.0/.well-known/openid-configuration").status_code == 400


@pytest.mark.parametrize("scope", ["https://management.core.windows.net//.default",
                                   "https://management.azure.com/.default", "https://management.azure.com//.default"])
def test_client_credentials_for_either_arm_audience(server: Server, scope: str) -> None:
    sp = cli(server, "principal", "create", "tok")
    t = tenant(server)
    with httpx.Client(base_url=server.url, verify=server.ssl_context()) as http:
        r = http.post(f"/{t}/oauth2/v2.0/token", data={"grant_type": "client_credentials",
                                                       "client_id": sp["appId"], "client_secret": sp["password"],
                                                       "scope": scope})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 3600
        jwk = http.get(f"/{t}/discovery/v2.0/keys").json()["keys"][0]
        claims = jwt.decode(body["access_token"], jwt.PyJWK(jwk).key, algorithms=["RS256"],
                            audience=[ARM, "https://management.core.windows.net/"], issuer=f"{server.url}/{t}/v2.0")
        assert claims["appid"] == sp["appId"] and claims["exp"] > claims["iat"]
        # The token is accepted (a principal without roles sees no subscription, but is authenticated).
        r = http.get("/subscriptions", params={"api-version": "2022-12-01"},
                     headers={"Authorization": "Bearer " + body["access_token"]})
        assert r.status_code == 200 and r.json()["value"] == []


def test_token_errors(server: Server) -> None:
    sp = cli(server, "principal", "create", "bad")
    t = tenant(server)
    url = f"/{t}/oauth2/v2.0/token"
    good = {"grant_type": "client_credentials", "client_id": sp["appId"], "client_secret": sp["password"],
            "scope": ARM + ".default"}
    with httpx.Client(base_url=server.url, verify=server.ssl_context()) as http:
        r = http.post(url, data={**good, "client_secret": "wrong"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = http.post(url, data={**good, "grant_type": "password"})
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
        r = http.post(url, data={**good, "scope": "https://graph.microsoft.com/.default"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
        r = http.post("/other-tenant/oauth2/v2.0/token", data=good)
        assert r.status_code == 400
        basic = base64.b64encode(f"{sp['appId']}:{sp['password']}".encode()).decode()
        r = http.post(url, data={"grant_type": "client_credentials", "scope": ARM + ".default"},
                      headers={"Authorization": "Basic " + basic})
        assert r.status_code == 200


def test_secrets_are_stored_hashed_and_admin_file_is_private(server: Server) -> None:
    sp = cli(server, "principal", "create", "hashed")
    raw = (server.data_dir / "vmforge.db").read_bytes()
    assert sp["password"].encode() not in raw
    for name in ("admin.json", "signing-key.pem"):
        mode = stat.S_IMODE((server.data_dir / "identity" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    listed = cli(server, "principal", "list")
    assert any(p["appId"] == sp["appId"] for p in listed)
    assert all("password" not in p for p in listed)


def test_deleted_principal_tokens_stop_working(server: Server) -> None:
    sp = principal(server, "Reader", "/")
    headers = {"Authorization": "Bearer " + sp["token"]}
    with httpx.Client(base_url=server.url, verify=server.ssl_context(), headers=headers) as http:
        assert http.get("/subscriptions", params={"api-version": "2022-12-01"}).status_code == 200
        cli(server, "principal", "delete", sp["appId"])
        import time

        time.sleep(1.2)
        r = http.get("/subscriptions", params={"api-version": "2022-12-01"})
        assert r.status_code == 401


def test_vmforge_token_prints_an_admin_jwt(server: Server) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "vmforge.cli", "token", "--data-dir", str(server.data_dir)],
                         capture_output=True, text=True, timeout=60)
    token = out.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == ARM
    r = httpx.get(f"{server.url}/subscriptions", params={"api-version": "2022-12-01"}, verify=server.ssl_context(),
                  headers={"Authorization": "Bearer " + token})
    assert r.status_code == 200 and r.json()["value"]
