"""Every ARM route refuses a request without a valid token: none, a forged signature, an expired token, a wrong
audience, a wrong issuer, another algorithm — always 401 with a Bearer challenge."""

from __future__ import annotations

import re
import time

import jwt
import pytest

from tests.conftest import SUBSCRIPTION, Server
from tests.identity.helpers import client, crafted, other_key


# Served without authentication, as Azure serves them: liveness and the cloud metadata the Azure CLI reads.
PUBLIC = {"/healthz", "/metadata/endpoints"}


def arm_routes() -> list[tuple[str, str]]:
    """(method, concrete path) of every ARM route of the app (the OAuth2 issuer and /healthz excluded)."""
    from fastapi.routing import APIRoute

    from vmforge.api.app import create_app
    from vmforge.settings import Settings

    app = create_app(Settings(data_dir="/nonexistent-vmforge"))

    def flat(routes: list) -> list:  # noqa: ANN001  (FastAPI >= 0.16x wraps included routers)
        got = []
        for r in routes:
            inner = getattr(r, "original_router", None)
            got += flat(inner.routes) if inner is not None else [r]
        return got

    out = []
    for r in flat(list(app.routes)):
        if not isinstance(r, APIRoute) or "{tenant}" in r.path or r.path in PUBLIC:
            continue
        path = re.sub(r"\{subscriptionId\}", SUBSCRIPTION, r.path)
        path = re.sub(r"\{[^}]+\}", "x1", path)
        for m in sorted(r.methods - {"HEAD", "OPTIONS"}):
            out.append((m, path))
    return out


ROUTES = arm_routes()


def bad_tokens(server: Server) -> dict[str, str]:
    now = int(time.time())
    real = crafted(server)
    alg_none = jwt.encode(jwt.decode(real, options={"verify_signature": False}), None, algorithm="none")
    return {
        "forged": crafted(server, key=other_key()),
        "expired": crafted(server, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "not-yet-valid": crafted(server, nbf=now + 3600),
        "audience": crafted(server, aud="https://graph.microsoft.com/"),
        "issuer": crafted(server, iss="https://login.microsoftonline.com/evil/v2.0"),
        "alg-none": alg_none,
        "garbage": "not.a.jwt",
        "tampered": real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB"),
    }


def test_route_list_is_complete() -> None:
    paths = {p for _, p in ROUTES}
    assert len(ROUTES) >= 45
    assert any(p.endswith("/run") for p in paths) and any("/galleries/" in p for p in paths)
    assert "/subscriptions" in paths and "/tenants" in paths


def test_every_route_without_token_is_401(server: Server) -> None:
    with client(server, None) as http:
        for method, path in ROUTES:
            r = http.request(method, path, params={"api-version": "2025-10-01"}, json={})
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)


def test_every_route_with_a_bad_token_is_401(server: Server) -> None:
    expected = {"expired": "ExpiredAuthenticationToken", "audience": "InvalidAuthenticationTokenAudience",
                "issuer": "InvalidAuthenticationTokenTenant"}
    for kind, token in bad_tokens(server).items():
        with client(server, token) as http:
            for method, path in ROUTES:
                r = http.request(method, path, params={"api-version": "2025-10-01"}, json={})
                assert r.status_code == 401, (kind, method, path, r.status_code, r.text)
                assert r.json()["error"]["code"] == expected.get(kind, "InvalidAuthenticationToken"), (kind, r.text)


@pytest.mark.parametrize("aud", ["https://management.azure.com/", "https://management.core.windows.net/"])
def test_both_arm_audiences_are_accepted(server: Server, aud: str) -> None:
    with client(server, crafted(server, aud=aud)) as http:
        r = http.get(f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.VirtualMachineImages/imageTemplates",
                     params={"api-version": "2025-10-01"})
        assert r.status_code == 200, r.text
