"""Lineage and revocation of artifacts — a vmforge extension, in ARM's shape of an extension resource/action
below the artifact it concerns (``vmforge.artifacts.lineage`` holds the rules):

    GET  {artifactId}/providers/Vmforge/lineage?api-version=2025-10-01
    POST {artifactId}/providers/Vmforge/revoke?api-version=2025-10-01     {"reason": "...", "cascade": true}
    POST {artifactId}/providers/Vmforge/unrevoke?api-version=2025-10-01   {"reason": "...", "cascade": true}

``{artifactId}`` is a managed image or gallery image version id (``versions/latest`` resolves to the newest
version not excluded and not revoked). Reading needs the artifact's read action (``Microsoft.Compute/images/read``,
``.../galleries/images/versions/read``); ancestors and descendants the caller may not read are shown only as
``{"hidden": true}``. Revoking and unrevoking need the artifact's write action, on the artifact and, with
``cascade``, on every descendant it changes (all or nothing: 403 ``LinkedAuthorizationFailed`` otherwise).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vmforge.api.body import read_json
from vmforge.api.deps import authenticate
from vmforge.artifacts import ids
from vmforge.artifacts import lineage as L
from vmforge.auth import Principal
from vmforge.errors import BadRequest, InvalidApiVersion, MissingApiVersion
from vmforge.identity.roles import resource_action

router = APIRouter()

API_VERSIONS = ("2025-10-01",)
EXT = "/providers/Vmforge"
ARTIFACT = "/subscriptions/{artifact:path}"
LINEAGE_TYPE = "Vmforge/lineage"


def _api_version(request: Request) -> str:
    v = request.query_params.get("api-version")
    if not v:
        raise MissingApiVersion("The api-version query parameter (?api-version=) is required for all requests.")
    if v not in API_VERSIONS:
        raise InvalidApiVersion(f"The api-version '{v}' is invalid for the vmforge lineage extension. The supported "
                                f"versions are '{','.join(API_VERSIONS)}'.", target="api-version")
    return v


def _artifact_id(artifact: str) -> str:
    """The artifact id of the path, checked to name a managed image or a gallery image version (400 else)."""
    rid = "/subscriptions/" + artifact.strip("/")
    p = ids.parse(rid, target="artifactId")
    if p.kind not in ("image", "version"):
        raise BadRequest(f"'{rid}' is a {p.kind}, not an artifact: name a managed image or a gallery image "
                         "version.", code="InvalidResourceId", target="artifactId")
    return rid


def _authorize(request: Request, principal: Principal, verb: str, artifact_id: str) -> None:
    """The artifact's own action (``verb``) over the artifact's scope; spends one request of the rate limit."""
    identity = request.app.state.identity
    action = resource_action(artifact_id, verb) or ""
    identity.authorizer.check(principal.object_id, principal.client, action, artifact_id)
    sub = artifact_id.strip("/").split("/")[1]
    remaining = identity.limiter.take(principal.object_id, sub, "reads" if verb == "read" else "writes")
    if remaining is not None:
        extra = getattr(request.state, "extra_headers", None)
        if extra is not None:
            kind = "reads" if verb == "read" else "writes"
            extra.append((f"x-ms-ratelimit-remaining-subscription-{kind}".encode(), str(remaining).encode()))


def _may(request: Request, principal: Principal, verb: str):  # noqa: ANN202
    authorizer = request.app.state.identity.authorizer

    def check(artifact_id: str) -> bool:
        action = resource_action(artifact_id, verb)
        return action is not None and authorizer.allowed(principal.object_id, action, artifact_id)
    return check


def _db(request: Request):  # noqa: ANN202
    return request.app.state.services.db


def _render(artifact_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"{body['artifact']['id']}{EXT}/lineage", "name": "lineage", "type": LINEAGE_TYPE,
            "properties": body}


async def _action_body(request: Request, *, reason_required: bool) -> tuple[str, bool]:
    raw = await request.body()
    if not raw.strip():
        if reason_required:
            raise BadRequest("A JSON body {\"reason\": \"...\", \"cascade\": false} is required.",
                             code="InvalidRequestContent", target="reason")
        return "", False
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object {\"reason\": \"...\", \"cascade\": false}.",
                         code="InvalidRequestContent")
    unknown = sorted(set(body) - {"reason", "cascade"})
    if unknown:
        raise BadRequest(f"Unknown field '{unknown[0]}': the body takes 'reason' and 'cascade'.",
                         code="InvalidRequestContent", target=unknown[0])
    cascade = body.get("cascade", False)
    if not isinstance(cascade, bool):
        raise BadRequest("'cascade' must be true or false.", code="InvalidParameter", target="cascade")
    return L.check_reason(body.get("reason"), required=reason_required), cascade


@router.get(ARTIFACT + EXT + "/lineage")
async def get_lineage(request: Request, artifact: str) -> JSONResponse:
    principal = authenticate(request)
    _api_version(request)
    rid = _artifact_id(artifact)
    _authorize(request, principal, "read", rid)
    body = await run_in_threadpool(L.lineage, _db(request), rid, _may(request, principal, "read"))
    return JSONResponse(_render(rid, body))


@router.post(ARTIFACT + EXT + "/revoke")
async def revoke(request: Request, artifact: str) -> JSONResponse:
    principal = authenticate(request)
    _api_version(request)
    rid = _artifact_id(artifact)
    _authorize(request, principal, "write", rid)
    reason, cascade = await _action_body(request, reason_required=True)
    caller = L.Caller(principal.object_id, principal.name)
    out = await run_in_threadpool(L.revoke, _db(request), rid, caller, reason, cascade=cascade,
                                  may_write=_may(request, principal, "write"))
    body = await run_in_threadpool(L.lineage, _db(request), rid, _may(request, principal, "read"))
    return JSONResponse({"revoked": out.changed, "alreadyRevoked": out.unchanged, "lineage": _render(rid, body)})


@router.post(ARTIFACT + EXT + "/unrevoke")
async def unrevoke(request: Request, artifact: str) -> JSONResponse:
    principal = authenticate(request)
    _api_version(request)
    rid = _artifact_id(artifact)
    _authorize(request, principal, "write", rid)
    reason, cascade = await _action_body(request, reason_required=False)
    caller = L.Caller(principal.object_id, principal.name)
    out = await run_in_threadpool(L.unrevoke, _db(request), rid, caller, reason, cascade=cascade,
                                  may_write=_may(request, principal, "write"))
    body = await run_in_threadpool(L.lineage, _db(request), rid, _may(request, principal, "read"))
    return JSONResponse({"unrevoked": out.changed, "notRevoked": out.unchanged, "lineage": _render(rid, body)})
