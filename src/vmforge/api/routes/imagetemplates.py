"""Microsoft.VirtualMachineImages/imageTemplates and their runOutputs and triggers."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse


class RawJSON(Response):
    media_type = "application/json"

from vmforge.api import render
from vmforge.api.body import read_json
from vmforge.api.deps import ApiVersionDep, ServicesDep, require
from vmforge.auth import Principal
from vmforge.identity import managed, roles
from vmforge.service.ids import TemplatePath

router = APIRouter()

# Each route declares the RBAC action it needs (vmforge.api.deps.require): 401/403/429 before anything else.
TemplateRead = Annotated[Principal, require(roles.TEMPLATE_READ)]
TemplateWrite = Annotated[Principal, require(roles.TEMPLATE_WRITE)]
TemplateDelete = Annotated[Principal, require(roles.TEMPLATE_DELETE)]
TemplateRun = Annotated[Principal, require(roles.TEMPLATE_RUN)]
TemplateCancel = Annotated[Principal, require(roles.TEMPLATE_CANCEL)]
RunOutputRead = Annotated[Principal, require(roles.RUN_OUTPUT_READ)]
TriggerRead = Annotated[Principal, require(roles.TRIGGER_READ)]
TriggerWrite = Annotated[Principal, require(roles.TRIGGER_WRITE)]
TriggerDelete = Annotated[Principal, require(roles.TRIGGER_DELETE)]

SUB = "/subscriptions/{subscriptionId}"
RG = SUB + "/resourceGroups/{resourceGroupName}"
TPL = RG + "/providers/Microsoft.VirtualMachineImages/imageTemplates/{imageTemplateName}"


def _base(request: Request) -> str:
    return request.app.state.settings.base_url


def _retry(request: Request) -> int:
    return request.app.state.settings.retry_after


def _next_link(request: Request, token: str | None) -> str | None:
    if token is None:
        return None
    q = dict(request.query_params)
    q["$skipToken"] = token
    from urllib.parse import urlencode

    return _base(request) + request.url.path + "?" + urlencode(q)


def _linked(request: Request, principal: Principal, action: str, path: TemplatePath):  # noqa: ANN202
    """ARM's linked-access check of the identities a template names, bound to this caller."""
    db, authorizer = request.app.state.services.db, request.app.state.identity.authorizer

    def check(canonical: dict) -> None:
        managed.check_linked(db, authorizer, principal, action, path.resource_id(), canonical)

    return check


@router.put(TPL)
async def put_template(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                       principal: TemplateWrite, api_version: ApiVersionDep, svc: ServicesDep,
                       background: BackgroundTasks) -> JSONResponse:
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    t, created, op = await run_in_threadpool(svc.templates.put, path, body, api_version, principal,
                                             _linked(request, principal, roles.TEMPLATE_WRITE, path))
    if op.status == "InProgress":
        background.add_task(svc.finish, op.id)
    headers = render.lro_headers(_base(request), op, api_version, _retry(request))
    return RawJSON(render.view(t, api_version), status_code=201 if created else 200, headers=headers)


@router.get(TPL)
async def get_template(subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                       principal: TemplateRead, api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    if svc.db.url.startswith("sqlite"):
        # A SQLite read of one column costs less than the hop to a worker thread.
        body = svc.templates.get_view(path, api_version)
    else:
        body = await run_in_threadpool(svc.templates.get_view, path, api_version)
    return RawJSON(body)


@router.patch(TPL)
async def patch_template(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                         principal: TemplateWrite, api_version: ApiVersionDep, svc: ServicesDep,
                         background: BackgroundTasks) -> JSONResponse:
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    t, op = await run_in_threadpool(svc.templates.patch, path, body, api_version, principal,
                                    _linked(request, principal, roles.TEMPLATE_WRITE, path))
    background.add_task(svc.finish, op.id)
    headers = render.lro_headers(_base(request), op, api_version, _retry(request), location=True)
    return RawJSON(render.view(t, api_version), status_code=202, headers=headers)


@router.delete(TPL)
async def delete_template(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                          principal: TemplateDelete, api_version: ApiVersionDep, svc: ServicesDep,
                          background: BackgroundTasks) -> Response:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    op = await run_in_threadpool(svc.templates.delete, path)
    if op is None:
        return Response(status_code=204)
    background.add_task(svc.finish, op.id)
    headers = render.lro_headers(_base(request), op, api_version, _retry(request), async_header=False, location=True)
    return Response(status_code=202, headers=headers)


@router.get(SUB + "/providers/Microsoft.VirtualMachineImages/imageTemplates")
async def list_by_subscription(request: Request, subscriptionId: str, principal: TemplateRead,
                               api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    page = await run_in_threadpool(svc.templates.list, subscriptionId, None, request.query_params.get("$skipToken"),
                                   api_version)
    return _page(request, page, api_version)


@router.get(RG + "/providers/Microsoft.VirtualMachineImages/imageTemplates")
async def list_by_group(request: Request, subscriptionId: str, resourceGroupName: str, principal: TemplateRead,
                        api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    page = await run_in_threadpool(svc.templates.list, subscriptionId, resourceGroupName,
                                   request.query_params.get("$skipToken"), api_version)
    return _page(request, page, api_version)


def _page(request: Request, page, api_version: str) -> Response:  # noqa: ANN001
    """A list page, assembled from the stored bodies without parsing them."""
    link = _next_link(request, page.next_token)
    tail = "}" if not link else ',"nextLink":' + json.dumps(link) + "}"
    return RawJSON('{"value":[' + ",".join(page.items) + "]" + tail)


@router.post(TPL + "/run")
async def run_template(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                       principal: TemplateRun, api_version: ApiVersionDep, svc: ServicesDep) -> Response:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    op = await run_in_threadpool(svc.runs.start, path)
    headers = render.lro_headers(_base(request), op, api_version, _retry(request), location=True)
    return Response(status_code=202, headers=headers)


@router.post(TPL + "/cancel")
async def cancel_template(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                          principal: TemplateCancel, api_version: ApiVersionDep, svc: ServicesDep) -> Response:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    op = await run_in_threadpool(svc.runs.cancel, path)
    headers = render.lro_headers(_base(request), op, api_version, _retry(request), location=True)
    return Response(status_code=202, headers=headers)


@router.get(TPL + "/runOutputs")
async def list_run_outputs(subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                           principal: RunOutputRead, api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    rows = await run_in_threadpool(svc.runs.outputs, path)
    return JSONResponse({"value": [render.run_output(path, r) for r in rows]})


@router.get(TPL + "/runOutputs/{runOutputName}")
async def get_run_output(subscriptionId: str, resourceGroupName: str, imageTemplateName: str, runOutputName: str,
                         principal: RunOutputRead, api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    row = await run_in_threadpool(svc.runs.output, path, runOutputName)
    return JSONResponse(render.run_output(path, row))


@router.get(TPL + "/triggers")
async def list_triggers(subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                        principal: TriggerRead, api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    rows = await run_in_threadpool(svc.triggers.list, path)
    return JSONResponse({"value": [render.trigger(path, r) for r in rows]})


@router.get(TPL + "/triggers/{triggerName}")
async def get_trigger(subscriptionId: str, resourceGroupName: str, imageTemplateName: str, triggerName: str,
                      principal: TriggerRead, api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    row = await run_in_threadpool(svc.triggers.get, path, triggerName)
    return JSONResponse(render.trigger(path, row))


@router.put(TPL + "/triggers/{triggerName}")
async def put_trigger(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                      triggerName: str, principal: TriggerWrite, api_version: ApiVersionDep, svc: ServicesDep,
                      background: BackgroundTasks) -> JSONResponse:
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    row, created, op = await run_in_threadpool(svc.triggers.put, path, triggerName, body, api_version)
    if op.status == "InProgress":
        background.add_task(svc.finish, op.id)
    headers = render.lro_headers(_base(request), op, api_version, _retry(request))
    return JSONResponse(render.trigger(path, row), status_code=201 if created else 200, headers=headers)


@router.delete(TPL + "/triggers/{triggerName}")
async def delete_trigger(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                         triggerName: str, principal: TriggerDelete, api_version: ApiVersionDep, svc: ServicesDep,
                         background: BackgroundTasks) -> Response:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    op = await run_in_threadpool(svc.triggers.delete, path, triggerName)
    if op is None:
        return Response(status_code=204)
    background.add_task(svc.finish, op.id)
    headers = render.lro_headers(_base(request), op, api_version, _retry(request), async_header=False, location=True)
    return Response(status_code=202, headers=headers)
