"""The provider's operation list and the status of asynchronous operations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vmforge.api import render
from vmforge.api.deps import ApiVersionDep, PrincipalDep, ServicesDep, require
from vmforge.auth import Principal
from vmforge.identity import roles
from vmforge.errors import ArmError

router = APIRouter()

# Any authenticated caller may list the provider's operations (as on ARM); operation polls need a role that
# reads operations in the subscription or in a scope below it (operation ids are random UUIDs).
OperationRead = Annotated[Principal, require(roles.OPERATION_READ, within=True)]

OPS = "/subscriptions/{subscriptionId}/providers/Microsoft.VirtualMachineImages/locations/{location}"


@router.get("/providers/Microsoft.VirtualMachineImages/operations")
async def list_operations(principal: PrincipalDep, api_version: ApiVersionDep) -> JSONResponse:
    return JSONResponse({"value": render.provider_operations()})


@router.get(OPS + "/operations/{operationId}")
async def operation_status(request: Request, subscriptionId: str, location: str, operationId: str,
                           principal: OperationRead, api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    op = await run_in_threadpool(svc.templates.get_operation, subscriptionId, location, operationId)
    # While it runs, say when to ask again, as ARM does: without it Azure's clients wait their default 30 s.
    headers = {"Retry-After": str(request.app.state.settings.retry_after)} if op.status == "InProgress" else None
    return JSONResponse(render.operation(op), headers=headers)


@router.get(OPS + "/operationResults/{operationId}")
async def operation_result(request: Request, subscriptionId: str, location: str, operationId: str,
                           principal: OperationRead, api_version: ApiVersionDep, svc: ServicesDep) -> Response:
    """ARM's Location protocol: 202 while the operation runs, 204 once it succeeded, its error if it failed."""
    op = await run_in_threadpool(svc.templates.get_operation, subscriptionId, location, operationId)
    settings = request.app.state.settings
    if op.status == "InProgress":
        headers = render.lro_headers(settings.base_url, op, api_version, settings.retry_after, async_header=False,
                                     location=True)
        return Response(status_code=202, headers=headers)
    if op.status == "Succeeded":
        return Response(status_code=204)
    err = op.error or {"code": op.status, "message": f"The operation ended {op.status}."}
    raise ArmError(err.get("message", ""), code=err.get("code", op.status), status=400)
