"""Microsoft.ManagedIdentity/userAssignedIdentities: what ``az identity create|show|list|delete`` and
``azure-mgmt-msi`` call. Routes only parse and render; ``vmforge.identity.managed`` holds the logic."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vmforge.api.body import read_json
from vmforge.api.deps import ServicesDep, require
from vmforge.api.routes.meta import ApiVersion
from vmforge.auth import Principal
from vmforge.errors import ArmError, BadRequest, NotFound
from vmforge.identity import managed

router = APIRouter()

SUB = "/subscriptions/{subscriptionId}"
RGP = SUB + "/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity"
UAI = RGP + "/userAssignedIdentities/{resourceName}"

_ACT = "Microsoft.ManagedIdentity/userAssignedIdentities/"
IdentityRead = Annotated[Principal, require(_ACT + "read")]
IdentityWrite = Annotated[Principal, require(_ACT + "write")]
IdentityDelete = Annotated[Principal, require(_ACT + "delete")]


def _body_fields(body: Any, *, need_location: bool) -> tuple[str | None, dict[str, str] | None]:
    if not isinstance(body, dict):
        raise BadRequest("The request content must be a JSON object.", code="InvalidRequestContent")
    location = body.get("location")
    if need_location and (not isinstance(location, str) or not location.strip()):
        raise BadRequest("The 'location' property is required.", code="LocationRequired", target="location")
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, dict)
                             or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())):
        raise BadRequest("'tags' must be an object of string values.", code="InvalidRequestContent", target="tags")
    return location, tags


@router.put(UAI)
async def put_identity(request: Request, subscriptionId: str, resourceGroupName: str, resourceName: str,
                       _p: IdentityWrite, _v: ApiVersion, svc: ServicesDep) -> JSONResponse:
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    location, tags = _body_fields(body, need_location=True)
    ident, created = await run_in_threadpool(managed.create_or_update, svc.db, subscriptionId, resourceGroupName,
                                             resourceName, str(location), request.app.state.settings.tenant_id,
                                             tags)
    return JSONResponse(ident.to_arm(), status_code=201 if created else 200)


@router.patch(UAI)
async def patch_identity(request: Request, subscriptionId: str, resourceGroupName: str, resourceName: str,
                         _p: IdentityWrite, _v: ApiVersion, svc: ServicesDep) -> JSONResponse:
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    _, tags = _body_fields(body, need_location=False)
    current = await run_in_threadpool(managed.get, svc.db, subscriptionId, resourceGroupName, resourceName)
    if current is None:
        raise _not_found(resourceGroupName, resourceName)
    ident, _ = await run_in_threadpool(managed.create_or_update, svc.db, subscriptionId, resourceGroupName,
                                       resourceName, current.location, current.tenant_id, tags)
    return JSONResponse(ident.to_arm())


def _not_found(group: str, name: str) -> ArmError:
    return NotFound(f"The Resource '{managed.IDENTITY_TYPE}/{name}' under resource group '{group}' was not found.",
                    code="ResourceNotFound")


@router.get(UAI)
async def get_identity(subscriptionId: str, resourceGroupName: str, resourceName: str, _p: IdentityRead,
                       _v: ApiVersion, svc: ServicesDep) -> JSONResponse:
    ident = await run_in_threadpool(managed.get, svc.db, subscriptionId, resourceGroupName, resourceName)
    if ident is None:
        raise _not_found(resourceGroupName, resourceName)
    return JSONResponse(ident.to_arm())


@router.delete(UAI)
async def delete_identity(subscriptionId: str, resourceGroupName: str, resourceName: str, _p: IdentityDelete,
                          _v: ApiVersion, svc: ServicesDep) -> Response:
    gone = await run_in_threadpool(managed.delete_identity, svc.db, subscriptionId, resourceGroupName, resourceName)
    return Response(status_code=200 if gone is not None else 204)


@router.get(RGP + "/userAssignedIdentities")
async def list_in_group(subscriptionId: str, resourceGroupName: str, _p: IdentityRead, _v: ApiVersion,
                        svc: ServicesDep) -> JSONResponse:
    rows = await run_in_threadpool(managed.list_identities, svc.db, subscriptionId, resourceGroupName)
    return JSONResponse({"value": [i.to_arm() for i in rows]})


@router.get(SUB + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities")
async def list_in_subscription(subscriptionId: str, _p: IdentityRead, _v: ApiVersion,
                               svc: ServicesDep) -> JSONResponse:
    rows = await run_in_threadpool(managed.list_identities, svc.db, subscriptionId)
    return JSONResponse({"value": [i.to_arm() for i in rows]})
