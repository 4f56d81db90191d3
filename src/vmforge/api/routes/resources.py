"""Microsoft.Resources/resourceGroups: create or update, read, check existence, update tags, list (paged,
``$filter`` by tag) and delete — the calls ``azure-mgmt-resource`` and ``az group`` make. A group scopes
everything else (``vmforge.service.groups``); deleting it deletes what it holds (``service.group_delete``), as
ARM's long-running operation: 202 with a ``Location`` under ``/subscriptions/{id}/operationresults/`` that
answers 202 until the delete is done, then 200."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vmforge.api.body import read_json
from vmforge.api.deps import ServicesDep, require
from vmforge.api.routes.meta import ApiVersion
from vmforge.auth import Principal
from vmforge.errors import ArmError, BadRequest
from vmforge.identity import roles
from vmforge.service import group_delete, groups
from vmforge.service.ids import check_group
from vmforge.store.models import Operation

router = APIRouter()

SUB = "/subscriptions/{subscriptionId}"
GROUP = SUB + "/resourceGroups/{resourceGroupName}"
RESULTS = SUB + "/operationresults/{operationId}"  # ARM's own spelling, as its Location headers carry it

GroupRead = Annotated[Principal, require(roles.RESOURCE_GROUP_READ)]
GroupWrite = Annotated[Principal, require(roles.RESOURCE_GROUP_WRITE)]
GroupDelete = Annotated[Principal, require(roles.RESOURCE_GROUP_DELETE)]
# The delete's poll lies at the subscription: a role on the group (below it) is enough to follow it.
GroupPoll = Annotated[Principal, require(roles.RESOURCE_GROUP_READ, within=True)]


def _location_headers(request: Request, op: Operation, api_version: str) -> dict[str, str]:
    settings = request.app.state.settings
    url = f"{settings.base_url}/subscriptions/{op.subscription_key}/operationresults/{op.id}"
    return {"Location": url + "?" + urlencode({"api-version": api_version}),
            "Retry-After": str(settings.retry_after)}


@router.put(GROUP)
async def create_or_update(request: Request, subscriptionId: str, resourceGroupName: str, _p: GroupWrite,
                           api_version: ApiVersion, svc: ServicesDep) -> JSONResponse:
    check_group(resourceGroupName)
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    location, tags, managed_by = groups.parse_put(body)
    group, created = await run_in_threadpool(groups.create_or_update, svc.db, subscriptionId, resourceGroupName,
                                             location, tags, managed_by)
    return JSONResponse(group.to_arm(), status_code=201 if created else 200)


async def _existing(svc: Any, subscription: str, group: str) -> groups.Group:
    """The group, also while it is being deleted (ARM shows it ``Deleting`` until it is gone)."""
    g = await run_in_threadpool(groups.get, svc.db, subscription, group)
    if g is None:
        raise groups.not_found(subscription, group)
    return g


@router.get(GROUP)
async def get_group(subscriptionId: str, resourceGroupName: str, _p: GroupRead, _v: ApiVersion,
                    svc: ServicesDep) -> JSONResponse:
    return JSONResponse((await _existing(svc, subscriptionId, resourceGroupName)).to_arm())


@router.head(GROUP)
async def check_existence(subscriptionId: str, resourceGroupName: str, _p: GroupRead, _v: ApiVersion,
                          svc: ServicesDep) -> Response:
    g = await run_in_threadpool(groups.get, svc.db, subscriptionId, resourceGroupName)
    return Response(status_code=204 if g is not None else 404)


@router.patch(GROUP)
async def update(request: Request, subscriptionId: str, resourceGroupName: str, _p: GroupWrite, _v: ApiVersion,
                 svc: ServicesDep) -> JSONResponse:
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="InvalidRequestContent")
    tags = groups.check_tags(body.get("tags"))
    managed_by = body.get("managedBy")
    if managed_by is not None and not isinstance(managed_by, str):
        raise BadRequest("'managedBy' must be a string.", code="InvalidRequestContent", target="managedBy")
    group = await run_in_threadpool(groups.update, svc.db, subscriptionId, resourceGroupName, tags, managed_by)
    return JSONResponse(group.to_arm())


@router.delete(GROUP)
async def delete_group(request: Request, subscriptionId: str, resourceGroupName: str, _p: GroupDelete,
                       api_version: ApiVersion, svc: ServicesDep, background: BackgroundTasks) -> Response:
    op = await run_in_threadpool(group_delete.begin, svc, subscriptionId, resourceGroupName)
    background.add_task(svc.finish, op.id)
    return Response(status_code=202, headers=_location_headers(request, op, api_version))


def _group_contents(db: Any, subscription: str, group: str) -> list[dict[str, Any]]:
    with db.read() as s:
        return groups.contents(s, subscription, group)


@router.get(GROUP + "/resources")
async def list_resources(subscriptionId: str, resourceGroupName: str, _p: GroupRead, _v: ApiVersion,
                         svc: ServicesDep) -> JSONResponse:
    """ARM's generic list of what a group holds (``az resource list -g``, ``resources.list_by_resource_group``)."""
    await _existing(svc, subscriptionId, resourceGroupName)
    items = await run_in_threadpool(_group_contents, svc.db, subscriptionId, resourceGroupName)
    return JSONResponse({"value": items})


@router.get(RESULTS)
async def delete_result(request: Request, subscriptionId: str, operationId: str, _p: GroupPoll,
                        api_version: ApiVersion, svc: ServicesDep) -> Response:
    """202 while the delete runs, 200 once the group is gone, the error when it failed."""
    op = await run_in_threadpool(group_delete.get_operation, svc, subscriptionId, operationId)
    if op.status == "InProgress":
        return Response(status_code=202, headers=_location_headers(request, op, api_version))
    if op.status == "Succeeded":
        return Response(status_code=200)
    err = op.error or {"code": op.status, "message": f"The operation ended {op.status}."}
    raise ArmError(err.get("message", ""), code=err.get("code", op.status), status=409)


@router.get(SUB + "/resourceGroups")
async def list_groups(request: Request, subscriptionId: str, _p: GroupRead, _v: ApiVersion,
                      svc: ServicesDep) -> JSONResponse:
    q = request.query_params
    tag_filter = groups.parse_filter(q.get("$filter"))
    limit = request.app.state.settings.page_size
    top = q.get("$top")
    if top is not None:
        if not top.isdigit() or int(top) < 1:
            raise BadRequest(f"The value '{top}' of $top is invalid; give a positive whole number.",
                             code="InvalidTopInQueryString", target="$top")
        limit = min(limit, int(top))
    page, token = await run_in_threadpool(groups.list_page, svc.db, subscriptionId, q.get("$skipToken"), limit,
                                          tag_filter)
    body: dict[str, Any] = {"value": [g.to_arm() for g in page]}
    # $top caps the whole list: the next page asks for what is left of it.
    if token is not None and (top is None or int(top) > len(page)):
        params = dict(q)
        params["$skipToken"] = token
        if top is not None:
            params["$top"] = str(int(top) - len(page))
        body["nextLink"] = request.app.state.settings.base_url + request.url.path + "?" + urlencode(params)
    return JSONResponse(body)

