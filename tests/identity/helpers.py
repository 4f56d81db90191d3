"""Helpers of the identity tests: principals made with the real CLI, tokens from the real token endpoint,
and hand-made tokens (forged, expired, wrong audience or issuer)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Server

ARM = "https://management.azure.com/"


def cli(server: Server, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "vmforge.cli", *args, "--data-dir", str(server.data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def tenant(server: Server) -> str:
    return json.loads((server.data_dir / "identity" / "admin.json").read_text())["tenant"]


def token_for(server: Server, app_id: str, secret: str, scope: str = ARM + ".default") -> str:
    r = httpx.post(f"{server.url}/{tenant(server)}/oauth2/v2.0/token", verify=server.ssl_context(),
                   data={"grant_type": "client_credentials", "client_id": app_id, "client_secret": secret,
                         "scope": scope})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def principal(server: Server, role: str | None = None, scope: str | None = None) -> dict[str, str]:
    """A new service principal (with ``role`` over ``scope``) and a token of it, as ``{"appId", "password",
    "token", "objectId"}``."""
    args = ["principal", "create", f"test-{uuid.uuid4().hex[:8]}"]
    if role:
        args += ["--role", role, "--scope", scope or "/"]
    sp = cli(server, *args)
    sp["token"] = token_for(server, sp["appId"], sp["password"])
    sp["objectId"] = jwt.decode(sp["token"], options={"verify_signature": False})["oid"]
    return sp


def client(server: Server, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, verify=server.ssl_context(), headers=headers, timeout=30)


def crafted(server: Server, *, key: Any = None, **overrides: Any) -> str:
    """A token shaped like the admin's, signed with ``key`` (default: the server's own key), with claims
    overridden (``exp=...``, ``aud=...``, ``iss=...``)."""
    from vmforge.identity import admin_credentials
    from vmforge.identity.keys import load_key

    creds = admin_credentials(server.data_dir)
    real = load_key(server.data_dir)
    now = int(time.time())
    claims = {"aud": ARM, "iss": creds["issuer"], "iat": now, "nbf": now, "exp": now + 600,
              "oid": creds["objectId"], "sub": creds["objectId"], "appid": creds["appId"], "tid": creds["tenant"]}
    claims.update(overrides)
    return jwt.encode(claims, key or real.private, algorithm="RS256", headers={"kid": real.kid})


def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
