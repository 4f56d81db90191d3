"""A small Microsoft Graph directory at ``{server}/graph/``: the calls the Azure CLI makes to resolve
``az role assignment create --assignee <appId | objectId>`` to a principal — service principals (vmforge's own
and the managed identities) by ``servicePrincipalNames``, objects by id, and users (there are none). The cloud
metadata (``/metadata/endpoints``) names it as the cloud's Graph, so the CLI never asks the internet.

Tokens for it carry the Graph audience only (``vmforge.identity.tokens.graph_audience``) and are accepted
nowhere else; any principal of this server may read the directory, as any application may read service
principals in Entra ID.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vmforge.errors import Unauthorized
from vmforge.identity import managed
from vmforge.identity.tokens import TokenVerifier, graph_audience
from vmforge.store.identity_models import ServicePrincipal
from vmforge.store.tenancy_models import ManagedIdentity

router = APIRouter()

_SPN = re.compile(r"servicePrincipalNames/any\(\w+:\w+\s+eq\s+'([^']*)'\)", re.IGNORECASE)


def _caller(request: Request) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Access token is empty.", code="InvalidAuthenticationToken")
    verifier = getattr(request.app.state, "graph_verifier", None)
    if verifier is None:
        ident = request.app.state.identity
        verifier = TokenVerifier(ident.issuer, None,
                                 local_audiences=(graph_audience(request.app.state.settings.base_url),))
        request.app.state.graph_verifier = verifier
    who = verifier.verify(token.strip())
    if not request.app.state.identity.authorizer.registered(who.object_id):
        raise Unauthorized("The principal of the access token no longer exists.", code="InvalidAuthenticationToken")


def _sp(row: ServicePrincipal) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.servicePrincipal", "id": row.object_id, "appId": row.app_id,
            "displayName": row.display_name, "servicePrincipalType": "Application",
            "servicePrincipalNames": [row.app_id]}


def _mi(ident: managed.Identity) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.servicePrincipal", "id": ident.principal_id, "appId": ident.client_id,
            "displayName": ident.name, "servicePrincipalType": "ManagedIdentity",
            "alternativeNames": ["isExplicit=True", ident.id],
            "servicePrincipalNames": [ident.client_id, ident.id]}


def _directory(db: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    with db.read() as s:
        sps = [_sp(r) for r in s.scalars(select(ServicePrincipal))]
        mis = [_mi(managed._identity(r)) for r in s.scalars(select(ManagedIdentity))]
    return sps + mis


def _odata(request: Request, value: list[dict[str, Any]], kind: str) -> JSONResponse:
    base = graph_audience(request.app.state.settings.base_url)
    return JSONResponse({"@odata.context": f"{base}v1.0/$metadata#{kind}", "value": value})


@router.get("/graph/v1.0/servicePrincipals", include_in_schema=False)
async def service_principals(request: Request) -> JSONResponse:
    _caller(request)
    everything = await run_in_threadpool(_directory, request.app.state.services.db)
    f = request.query_params.get("$filter", "")
    m = _SPN.search(f)
    if m:
        wanted = m.group(1).lower()
        everything = [o for o in everything if wanted in (n.lower() for n in o["servicePrincipalNames"])]
    elif f:
        appid = re.search(r"appId\s+eq\s+'([^']*)'", f, re.IGNORECASE)
        everything = [o for o in everything if appid and o["appId"].lower() == appid.group(1).lower()]
    return _odata(request, everything, "servicePrincipals")


@router.get("/graph/v1.0/users", include_in_schema=False)
async def users(request: Request) -> JSONResponse:
    _caller(request)
    return _odata(request, [], "users")


@router.post("/graph/v1.0/directoryObjects/getByIds", include_in_schema=False)
async def get_by_ids(request: Request) -> JSONResponse:
    _caller(request)
    from vmforge.api.body import read_json

    body = await read_json(request, 1024 * 1024)
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return JSONResponse({"error": {"code": "Request_BadRequest", "message": "'ids' must be a list of strings.",
                                       "innerError": {}}}, status_code=400)
    ids = {i.lower() for i in ids}
    everything = await run_in_threadpool(_directory, request.app.state.services.db)
    return _odata(request, [o for o in everything if o["id"].lower() in ids], "directoryObjects")
