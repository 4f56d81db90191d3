"""Microsoft.Authorization/roleDefinitions and roleAssignments at every scope (``/``, a subscription, a resource
group, a resource): what ``az role definition|assignment …`` and ``azure-mgmt-authorization`` call. The store is
``vmforge.identity.store``; ``vmforge role …`` is the admin's local shortcut over the same rows.

ARM's list semantics: listing assignments at a scope returns those at, above and below it (the CLI filters);
``$filter=atScope()`` keeps those at or above, ``principalId eq '…'`` / ``assignedTo('…')`` one principal's.
Role definitions listed at a scope are the built-in roles and the custom roles assignable there.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vmforge.api.body import read_json
from vmforge.api.deps import authenticate, authorize
from vmforge.api.routes.meta import ApiVersion
from vmforge.errors import BadRequest, NotFound
from vmforge.identity.roles import BUILTIN_ROLES, Role, covers, normalize_scope, subscription_of
from vmforge.identity.store import (Assignment, custom_role, delete_definition, get_definition, list_definitions,
                                    put_definition)
from vmforge.service.ids import iso

router = APIRouter()

AUTH = "/providers/Microsoft.Authorization"
DEF_TYPE = "Microsoft.Authorization/roleDefinitions"
ASG_TYPE = "Microsoft.Authorization/roleAssignments"
_ACT = "Microsoft.Authorization/"
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")


def _scope_of(scope: str, request: Request) -> tuple[str, str]:
    """The request's scope (display, key). The caller is authenticated first, so that a bad token gets 401
    whatever the path (no route answers anything else to an anonymous caller)."""
    request.state.principal = authenticate(request)
    return normalize_scope("/" + scope.strip("/"))


def _def_id(scope_display: str, role_id: str) -> str:
    sub = subscription_of(scope_display.lower())
    prefix = "" if sub is None else f"/subscriptions/{scope_display.split('/')[2]}"
    return f"{prefix}{AUTH}/roleDefinitions/{role_id}"


def _render_role(role: Role, scope_display: str, row: Any = None) -> dict[str, Any]:
    if row is not None:
        perms = row.permissions
    else:
        perms = [{"actions": list(role.actions), "notActions": list(role.not_actions), "dataActions": [],
                  "notDataActions": []}]
    props: dict[str, Any] = {"roleName": role.name, "type": "CustomRole" if role.custom else "BuiltInRole",
                             "description": role.description, "assignableScopes": list(role.assignable_scopes),
                             "permissions": perms}
    if row is not None:
        props.update({"createdOn": iso(row.created_at), "updatedOn": iso(row.updated_at),
                      "createdBy": row.created_by, "updatedBy": row.created_by})
    return {"id": _def_id(scope_display, role.id), "name": role.id, "type": DEF_TYPE, "properties": props}


def _render_assignment(a: Assignment) -> dict[str, Any]:
    return {"id": f"{'' if a.scope == '/' else a.scope}{AUTH}/roleAssignments/{a.id}", "name": a.id,
            "type": ASG_TYPE,
            "properties": {"roleDefinitionId": _def_id(a.scope, a.role), "principalId": a.principal_id,
                           "principalType": a.principal_type, "scope": a.scope, "condition": None,
                           "conditionVersion": None, "description": None, "createdOn": iso(a.created_at),
                           "updatedOn": iso(a.created_at), "createdBy": a.created_by, "updatedBy": a.created_by,
                           "delegatedManagedIdentityResourceId": None}}


def _filter_value(f: str, name: str) -> str | None:
    m = re.search(name + r"\s+eq\s+'([^']*)'", f, re.IGNORECASE)
    return m.group(1) if m else None


# ------------------------------------------------------------------------------------- role definitions
async def _list_definitions(request: Request, scope: str) -> JSONResponse:
    display, key = _scope_of(scope, request)
    authorize_at(request, _ACT + "roleDefinitions/read", display)
    store = request.app.state.identity.store
    f = request.query_params.get("$filter", "")
    name = _filter_value(f, "roleName")
    kind = _filter_value(f, "type")
    rows = await run_in_threadpool(lambda: [(custom_role(d), d) for d in list_definitions(store.db)])
    out: list[dict[str, Any]] = []
    candidates: list[tuple[Role, Any]] = [(r, None) for r in BUILTIN_ROLES.values()] + rows
    for role, row in candidates:
        if name is not None and role.name.lower() != name.lower():
            continue
        if kind is not None and kind.lower() != ("customrole" if role.custom else "builtinrole"):
            continue
        if role.custom and not any(covers(s.lower(), key) or covers(key, s.lower()) for s in role.assignable_scopes):
            continue
        out.append(_render_role(role, display, row))
    return JSONResponse({"value": out})


def authorize_at(request: Request, action: str, scope: str) -> None:
    """The caller (authenticated by ``_scope_of``) may perform ``action`` over ``scope`` (ARM's 403
    ``AuthorizationFailed`` otherwise)."""
    principal = request.state.principal
    request.app.state.identity.authorizer.check(principal.object_id, principal.client, action, scope)


async def _get_definition(request: Request, scope: str, role_id: str) -> JSONResponse:
    display, _ = _scope_of(scope, request)
    authorize_at(request, _ACT + "roleDefinitions/read", display)
    key = role_id.lower()
    for role in BUILTIN_ROLES.values():
        if role.id == key:
            return JSONResponse(_render_role(role, display))
    row = await run_in_threadpool(get_definition, request.app.state.identity.store.db, key)
    if row is None:
        raise NotFound(f"The role definition '{role_id}' could not be found.", code="RoleDefinitionDoesNotExist")
    return JSONResponse(_render_role(custom_role(row), display, row))


async def _put_definition(request: Request, scope: str, role_id: str) -> JSONResponse:
    display, _ = _scope_of(scope, request)
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    props = body.get("properties") if isinstance(body, dict) else None
    scopes = props.get("assignableScopes") if isinstance(props, dict) else None
    # Writing a role needs the right over the scope of the request and over every scope it can be assigned at.
    for s in [display] + [normalize_scope(x)[0] for x in scopes or [] if isinstance(x, str)]:
        authorize_at(request, _ACT + "roleDefinitions/write", s)
    store = request.app.state.identity.store
    row, created = await run_in_threadpool(put_definition, store.db, role_id, props,
                                           request.state.principal.object_id)
    request.app.state.identity.authorizer.invalidate()
    return JSONResponse(_render_role(custom_role(row), display, row), status_code=201 if created else 200)


async def _delete_definition(request: Request, scope: str, role_id: str) -> Response:
    display, _ = _scope_of(scope, request)
    store = request.app.state.identity.store
    row = await run_in_threadpool(get_definition, store.db, role_id)
    for s in [display] + (list(row.assignable_scopes) if row is not None else []):
        authorize_at(request, _ACT + "roleDefinitions/delete", s)
    gone = await run_in_threadpool(delete_definition, store.db, role_id)
    request.app.state.identity.authorizer.invalidate()
    if gone is None:
        return Response(status_code=204)
    return JSONResponse(_render_role(custom_role(gone), display, gone))


# ------------------------------------------------------------------------------------- role assignments
async def _list_assignments(request: Request, scope: str) -> JSONResponse:
    display, key = _scope_of(scope, request)
    authorize_at(request, _ACT + "roleAssignments/read", display)
    store = request.app.state.identity.store
    f = request.query_params.get("$filter", "")
    principal = _filter_value(f, "principalId")
    assigned = re.search(r"assignedTo\('([^']*)'\)", f, re.IGNORECASE)
    principal = principal or (assigned.group(1) if assigned else None)
    at_scope = "atscope()" in f.replace(" ", "").lower()
    rows = await run_in_threadpool(store.assignments, principal)
    out = [a for a in rows if covers(a.scope_key, key) or (not at_scope and covers(key, a.scope_key))]
    return JSONResponse({"value": [_render_assignment(a) for a in out]})


def _assignment_in(store: Any, name: str, key: str) -> Assignment:
    a = store.assignment(name.lower()) or store.assignment(name)
    if a is None or a.scope_key != key:
        raise NotFound(f"The role assignment '{name}' is not found.", code="RoleAssignmentNotFound")
    return a


async def _get_assignment(request: Request, scope: str, name: str) -> JSONResponse:
    display, key = _scope_of(scope, request)
    authorize_at(request, _ACT + "roleAssignments/read", display)
    a = await run_in_threadpool(_assignment_in, request.app.state.identity.store, name, key)
    return JSONResponse(_render_assignment(a))


def _principal_type(store: Any, principal_id: str, tenant: str, allow_external: bool) -> str:
    """``ServicePrincipal`` for a principal of this server (or any object id, when an external issuer's principals
    are accepted); ARM's 400 ``PrincipalNotFound`` otherwise."""
    if store.exists(principal_id) or allow_external:
        return "ServicePrincipal"
    raise BadRequest(f"Principal {principal_id.replace('-', '')} does not exist in the directory {tenant}.",
                     code="PrincipalNotFound")


async def _put_assignment(request: Request, scope: str, name: str) -> JSONResponse:
    display, key = _scope_of(scope, request)
    authorize_at(request, _ACT + "roleAssignments/write", display)
    try:
        name = str(uuid.UUID(name))
    except ValueError:
        raise BadRequest(f"The role assignment name '{name}' is not a valid GUID.",
                         code="InvalidRoleAssignmentId") from None
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict):
        raise BadRequest("The role assignment has no 'properties'.", code="InvalidRequestContent",
                         target="properties")
    role_ref, principal_id = props.get("roleDefinitionId"), props.get("principalId")
    if not isinstance(role_ref, str) or not role_ref:
        raise BadRequest("'roleDefinitionId' is required.", code="InvalidRequestContent",
                         target="properties.roleDefinitionId")
    if not isinstance(principal_id, str) or not principal_id:
        raise BadRequest("'principalId' is required.", code="InvalidRequestContent", target="properties.principalId")
    rt = request.app.state.identity
    tenant = request.app.state.settings.tenant_id
    external = bool(request.app.state.settings.external_issuer)

    def work() -> Assignment:
        store = rt.store
        role = store.role(role_ref)
        ptype = _principal_type(store, principal_id, tenant, external)
        given = props.get("principalType")
        if given is not None and given not in PRINCIPAL_TYPES:
            raise BadRequest(f"'principalType' must be one of {', '.join(PRINCIPAL_TYPES)}.",
                             code="InvalidRequestContent", target="properties.principalType")
        ptype = given or ptype
        return store.assign(principal_id, role, display, principal_type=ptype, assignment_id=name,
                            created_by=request.state.principal.object_id)

    a = await run_in_threadpool(work)
    rt.authorizer.invalidate()
    return JSONResponse(_render_assignment(a), status_code=201)


async def _delete_assignment(request: Request, scope: str, name: str) -> Response:
    display, key = _scope_of(scope, request)
    authorize_at(request, _ACT + "roleAssignments/delete", display)
    store = request.app.state.identity.store
    try:
        a = await run_in_threadpool(_assignment_in, store, name, key)
    except NotFound:
        return Response(status_code=204)
    await run_in_threadpool(lambda: store.remove(assignment_id=a.id))
    request.app.state.identity.authorizer.invalidate()
    return JSONResponse(_render_assignment(a))


def _route(method: str, tail: str, handler, takes_name: str | None = None) -> None:  # noqa: ANN001
    """Register ``handler`` at the root scope (``/providers/…``) and below any scope (``/{scope}/providers/…``):
    the scope (empty at the root) and the last segment come from the path."""

    async def endpoint(request: Request, _v: ApiVersion) -> Response:
        scope = request.path_params.get("scope", "")
        if takes_name is None:
            return await handler(request, scope)
        return await handler(request, scope, request.path_params[takes_name])

    endpoint.__name__ = f"{method.lower()}_{handler.__name__.strip('_')}"
    for path in (AUTH + tail, "/{scope:path}" + AUTH + tail):
        router.add_api_route(path, endpoint, methods=[method], include_in_schema=False)


_route("GET", "/roleDefinitions", _list_definitions)
_route("GET", "/roleDefinitions/{roleId}", _get_definition, "roleId")
_route("PUT", "/roleDefinitions/{roleId}", _put_definition, "roleId")
_route("DELETE", "/roleDefinitions/{roleId}", _delete_definition, "roleId")
_route("GET", "/roleAssignments", _list_assignments)
_route("GET", "/roleAssignments/{name}", _get_assignment, "name")
_route("PUT", "/roleAssignments/{name}", _put_assignment, "name")
_route("DELETE", "/roleAssignments/{name}", _delete_assignment, "name")
