"""The local OAuth2 issuer, shaped like Entra ID's v2.0 endpoints so that MSAL (azure-identity, the Azure
CLI) logs in against vmforge:

- ``GET  /{tenant}/v2.0/.well-known/openid-configuration`` (and the v1 path without ``/v2.0``)
- ``GET  /{tenant}/discovery/v2.0/keys`` — the JWKS
- ``POST /{tenant}/oauth2/v2.0/token`` — ``client_credentials`` with a service principal's client id and secret
  (form fields or HTTP Basic), ``scope`` one of the ARM audiences + ``/.default``; ``/{tenant}/oauth2/token``
  takes the v1 ``resource`` field instead.

Errors use OAuth2's shape ``{"error", "error_description", "error_codes", "timestamp", "trace_id"}``.
Failed sign-ins and floods are throttled (429 ``temporarily_unavailable`` with ``Retry-After``) per client id
and source address and per address: see :class:`vmforge.identity.ratelimit.TokenThrottle`.
"""

from __future__ import annotations

import base64
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vmforge.identity import IdentityRuntime
from vmforge.identity.ratelimit import Throttled
from vmforge.identity.tokens import ARM_AUDIENCES, audience_for

router = APIRouter()

_MAX_FORM = 64 * 1024


def _runtime(request: Request) -> IdentityRuntime:
    return request.app.state.identity


def _tenant_ok(request: Request, tenant: str) -> bool:
    return tenant.lower() in (request.app.state.settings.tenant_id.lower(), "organizations")


def _oauth_error(status: int, error: str, code: int, description: str,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return JSONResponse({"error": error, "error_description": f"AADSTS{code}: {description}",
                         "error_codes": [code], "timestamp": now, "trace_id": str(uuid.uuid4()),
                         "correlation_id": str(uuid.uuid4())}, status_code=status,
                        headers={"Cache-Control": "no-store", **(headers or {})})


def _throttled(e: Throttled) -> JSONResponse:
    if e.reason == "failures":
        code, text = 50053, "Too many failed sign-ins for this application from this address."
    else:
        code, text = 90055, "Too many token requests from this address."
    return _oauth_error(429, "temporarily_unavailable", code, f"{text} Retry after {e.retry_after} seconds.",
                        headers={"Retry-After": str(e.retry_after)})


def _tenant_not_found(tenant: str) -> JSONResponse:
    return _oauth_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")


def _openid_configuration(request: Request, tenant: str, v2: bool) -> JSONResponse:
    base = request.app.state.settings.base_url
    rt = _runtime(request)
    ver = "/v2.0" if v2 else ""
    return JSONResponse({
        "issuer": rt.issuer.issuer,
        "token_endpoint": f"{base}/{tenant}/oauth2{ver}/token",
        "authorization_endpoint": f"{base}/{tenant}/oauth2{ver}/authorize",
        "device_authorization_endpoint": f"{base}/{tenant}/oauth2{ver}/devicecode",
        "jwks_uri": f"{base}/{tenant}/discovery{ver}/keys",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "scopes_supported": [a + ".default" for a in ARM_AUDIENCES],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "vmforge.local",
        "cloud_graph_host_name": "vmforge.local",
        "msgraph_host": "vmforge.local",
    })


@router.get("/{tenant}/v2.0/.well-known/openid-configuration", include_in_schema=False)
async def openid_configuration_v2(request: Request, tenant: str) -> JSONResponse:
    if not _tenant_ok(request, tenant):
        return _tenant_not_found(tenant)
    return _openid_configuration(request, tenant, True)


@router.get("/{tenant}/.well-known/openid-configuration", include_in_schema=False)
async def openid_configuration_v1(request: Request, tenant: str) -> JSONResponse:
    if not _tenant_ok(request, tenant):
        return _tenant_not_found(tenant)
    return _openid_configuration(request, tenant, False)


@router.get("/{tenant}/discovery/v2.0/keys", include_in_schema=False)
@router.get("/{tenant}/discovery/keys", include_in_schema=False)
async def jwks(request: Request, tenant: str) -> JSONResponse:
    return JSONResponse({"keys": [_runtime(request).issuer.key.jwk()]})


async def _form(request: Request) -> dict[str, str] | JSONResponse:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return _oauth_error(400, "invalid_request", 900144,
                            "The request body must be application/x-www-form-urlencoded.")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_FORM:
            return _oauth_error(413, "invalid_request", 90014, "The request body is too large.")
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return _oauth_error(400, "invalid_request", 900144, "The request body is not a valid form.")
    return {k: v[0] for k, v in fields.items()}


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, pw = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return unquote(user), unquote(pw)


async def _token(request: Request, tenant: str, v2: bool) -> JSONResponse:
    if not _tenant_ok(request, tenant):
        return _tenant_not_found(tenant)
    form = await _form(request)
    if isinstance(form, JSONResponse):
        return form
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", 70003,
                            f"The grant type '{form.get('grant_type', '')}' is not supported; use "
                            "client_credentials.")
    basic = _basic(request)
    client_id, secret = basic if basic else (form.get("client_id", ""), form.get("client_secret", ""))
    if not client_id or not secret:
        return _oauth_error(400, "invalid_request", 900144, "The request body must contain 'client_id' and "
                            "'client_secret' (client assertions are not supported).")
    wanted = form.get("scope", "") if v2 else form.get("resource", "")
    base = request.app.state.settings.base_url
    audiences = [audience_for(s, base) for s in wanted.split()] if wanted else []
    if len(audiences) != 1 or audiences[0] is None:
        return _oauth_error(400, "invalid_scope" if v2 else "invalid_resource", 70011,
                            f"The provided value '{wanted}' is not valid. Request a token for "
                            f"'{ARM_AUDIENCES[1]}/.default' or '{ARM_AUDIENCES[0]}.default'.")
    rt = _runtime(request)
    address = request.client.host if request.client else ""
    try:
        rt.token_throttle.admit(client_id, address)  # before the secret is checked: no oracle when throttled
    except Throttled as e:
        return _throttled(e)
    sp = await run_in_threadpool(rt.store.authenticate, client_id, secret)
    if sp is not None:
        rt.token_throttle.succeeded(client_id, address)
    if sp is None:
        return _oauth_error(401, "invalid_client", 7000215,
                            f"Invalid client secret provided, or no application '{client_id}' in tenant "
                            f"'{tenant}'.")
    token, ttl = rt.issuer.mint(sp.object_id, sp.app_id, sp.display_name, audiences[0])
    body: dict[str, object] = {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl,
                               "access_token": token}
    if not v2:
        now = int(time.time())
        body.update({"expires_on": str(now + ttl), "not_before": str(now), "resource": audiences[0]})
        body["expires_in"] = str(ttl)
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.post("/{tenant}/oauth2/v2.0/token", include_in_schema=False)
async def token_v2(request: Request, tenant: str) -> JSONResponse:
    return await _token(request, tenant, True)


@router.post("/{tenant}/oauth2/token", include_in_schema=False)
async def token_v1(request: Request, tenant: str) -> JSONResponse:
    return await _token(request, tenant, False)
