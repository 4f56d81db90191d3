"""vmforge's own additions to the image template API: the runs of a template and their live logs.

``GET {template}/runs``, ``GET {template}/runs/{runId|latest}`` and
``GET {template}/runs/{runId|latest}/log?offset=N&follow=true`` (customization.log from byte N, streamed while
the run is active; ``x-vmforge-log-offset`` says where the body starts) and
``GET {template}/runs/{runId|latest}/sbom`` (the run's SPDX 2.3 document, ``vmforge.sbom``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from typing import Annotated

from vmforge.api.deps import ApiVersionDep, ServicesDep, require
from vmforge.auth import Principal
from vmforge.identity import roles
from vmforge.api.routes.imagetemplates import TPL
from vmforge.service.ids import TemplatePath, iso
from vmforge.service.runstate import RunState
from vmforge.errors import NotFound
from vmforge.runner.execute import run_dir

router = APIRouter()

RunRead = Annotated[Principal, require(roles.TEMPLATE_READ)]

_START = re.compile(r"\(telemetry\) Starting provisioner (\S+)(?: \"(.*)\")? \((\w+) (\d+)/(\d+)\)")
_END = re.compile(r"\(telemetry\) ending ")
CHUNK = 64 * 1024


def current_step(log_path: str | None) -> dict[str, Any] | None:
    """The step in progress, read from the tail of customization.log (the run's event stream)."""
    if not log_path or not Path(log_path).exists():
        return None
    with open(log_path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 256 * 1024))
        lines = f.read().decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        if _END.search(line):
            return None
        m = _START.search(line)
        if m:
            return {"index": int(m.group(4)), "total": int(m.group(5)), "phase": m.group(3), "kind": m.group(1),
                    "name": m.group(2) or ""}
    return None


def run_body(request: Request, path: TemplatePath, run: Any, api_version: str) -> dict[str, Any]:
    active = not RunState(run.state).terminal
    return {
        "id": str(run.id),
        "runState": run.state,
        "runSubState": run.sub_state if active else None,
        "startTime": iso(run.start_time),
        "endTime": iso(run.end_time),
        "message": run.message or "",
        "currentStep": current_step(run.log_path) if active else None,
        "logUrl": request.app.state.settings.base_url + path.resource_id() + f"/runs/{run.id}/log?api-version={api_version}",
        "logPath": run.log_path,
    }


@router.get(TPL + "/runs")
async def list_runs(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                    principal: RunRead, api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    runs = await run_in_threadpool(svc.runs.runs_of, path)
    return JSONResponse({"value": [run_body(request, path, r, api_version) for r in runs]})


@router.get(TPL + "/runs/{runId}")
async def get_run(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str, runId: str,
                  principal: RunRead, api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    run = await run_in_threadpool(svc.runs.run_of, path, runId)
    return JSONResponse(run_body(request, path, run, api_version))


@router.get(TPL + "/runs/{runId}/sbom")
async def run_sbom(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str, runId: str,
                   principal: RunRead, api_version: ApiVersionDep, svc: ServicesDep) -> JSONResponse:
    """The run's SPDX 2.3 document (vmforge.sbom); 404 saying why when it has none."""
    from vmforge import sbom

    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    run = await run_in_threadpool(svc.runs.run_of, path, runId)
    doc = await run_in_threadpool(sbom.load, sbom.sbom_path(run_dir(request.app.state.settings.data_dir, run.id)),
                                  path.name, run.id)
    if doc is None:
        raise NotFound(sbom.no_sbom_message(run, path.name), target="sbom")
    return JSONResponse(doc, media_type="application/spdx+json")


@router.get(TPL + "/runs/{runId}/log")
async def run_log(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str, runId: str,
                  principal: RunRead, api_version: ApiVersionDep, svc: ServicesDep, offset: int = 0,
                  follow: bool = False) -> StreamingResponse:
    path = TemplatePath(subscriptionId, resourceGroupName, imageTemplateName)
    run = await run_in_threadpool(svc.runs.run_of, path, runId)
    run_id, log_path = run.id, run.log_path
    offset = max(0, offset)

    async def body() -> AsyncIterator[bytes]:
        pos = offset
        while True:
            active = not (await run_in_threadpool(svc.runs.view, run_id)).state.terminal
            lp = log_path or (await run_in_threadpool(svc.runs.run_of, path, str(run_id))).log_path
            if lp and Path(lp).exists():
                with open(lp, "rb") as f:
                    f.seek(pos)
                    while chunk := f.read(CHUNK):
                        pos += len(chunk)
                        yield chunk
            if not follow or not active:
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.3)

    return StreamingResponse(body(), media_type="text/plain; charset=utf-8",
                             headers={"x-vmforge-log-offset": str(offset), "Cache-Control": "no-store"})
