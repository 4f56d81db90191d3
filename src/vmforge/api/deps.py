"""Typed dependencies: the services, the caller, the api-version — and ``require(action)``, the one RBAC check.

``require(action)`` is what every ARM route declares instead of a bare principal::

    from vmforge.api.deps import require
    from vmforge.identity import roles

    @router.post(TPL + "/run")
    async def run(..., principal: Annotated[Principal, require(roles.TEMPLATE_RUN)]) -> Response: ...

It authenticates the caller (401), checks that one of its role assignments allows ``action`` over the request's
scope (403 ``AuthorizationFailed``; the scope is the request path, so an assignment at ``/``, at the
subscription, at the resource group or at the resource matches), and spends one request of the caller's
read or write budget for the subscription (429 with ``Retry-After``; actions ending in ``/read`` are reads).
``within=True`` also accepts an assignment *below* the path (for subscription-level operation-status polls).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from vmforge import wire
from vmforge.auth import Principal
from vmforge.service.container import Services

_ACTION_TAILS = ("/run", "/cancel")


# The dependencies are ``async def`` although they do not await: FastAPI runs a plain ``def`` dependency in
# its thread pool, and a thread hop per dependency cost more than the whole of their work.


async def get_services(request: Request) -> Services:
    return request.app.state.services


def authenticate(request: Request) -> Principal:
    """The one place that decides who the caller is."""
    return request.app.state.authenticator.authenticate(request.headers.get("authorization"))


async def get_principal(request: Request) -> Principal:
    return authenticate(request)


async def get_api_version(request: Request) -> str:
    return wire.check_api_version(request.query_params.get("api-version"))


def request_scope(request: Request, action: str) -> str:
    """The ARM scope a request acts on: its (canonical) path, less a trailing POST action segment."""
    path = request.url.path.rstrip("/") or "/"
    if action.endswith("/action"):
        for tail in _ACTION_TAILS:
            if path.lower().endswith(tail):
                return path[: -len(tail)]
    return path


def authorize(request: Request, principal: Principal, action: str, *, within: bool = False) -> None:
    """Check ``action`` over the request's scope and spend one request of the rate limit (see module doc).
    Usable from routes that cannot declare ``require`` (e.g. when the action depends on the body)."""
    scope = request_scope(request, action)
    identity = request.app.state.identity
    identity.authorizer.check(principal.object_id, principal.client, action, scope, within=within)
    sub = request.path_params.get("subscriptionId") or ""
    kind = "reads" if action.lower().endswith("/read") else "writes"
    remaining = identity.limiter.take(principal.object_id, sub, kind)
    if remaining is not None:
        extra = getattr(request.state, "extra_headers", None)
        if extra is not None:
            extra.append((f"x-ms-ratelimit-remaining-subscription-{kind}".encode(), str(remaining).encode()))


def require(action: str, *, within: bool = False) -> Any:
    """A dependency yielding the authenticated ``Principal`` once it may perform ``action`` here."""

    async def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        authorize(request, principal, action, within=within)
        return principal

    dependency.__name__ = f"require[{action}]"
    return Depends(dependency)


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ApiVersionDep = Annotated[str, Depends(get_api_version)]
