"""ARM JSON for stored rows. Read-only fields are filled here, the way the service fills them."""

from __future__ import annotations

from typing import Any

from vmforge.service.ids import (
    RUN_OUTPUT_TYPE,
    TRIGGER_TYPE,
    TemplatePath,
    iso,
    operation_path,
    operation_result_path,
)
from vmforge.service.views import template, view  # noqa: F401  (re-exported for the routes)
from vmforge.store.models import Operation, RunOutput, Trigger


def trigger(path: TemplatePath, row: Trigger) -> dict[str, Any]:
    props: dict[str, Any] = {"kind": row.kind}
    if row.kind == "Schedule":  # vmforge's extension: what was given, and when it fires next / fired last
        props.update(schedule=row.schedule, timeZone=row.time_zone, condition=row.condition)
        if row.next_run_time is not None:
            props["nextRunTime"] = iso(row.next_run_time)
        if row.last_fired_time is not None:
            props["lastFiredTime"] = iso(row.last_fired_time)
    props["status"] = {"code": row.status_code, "message": row.status_message, "time": iso(row.status_time)}
    props["provisioningState"] = row.provisioning_state
    return {
        "id": path.resource_id() + f"/triggers/{row.name}",
        "name": row.name,
        "type": TRIGGER_TYPE,
        "properties": props,
    }


def run_output(path: TemplatePath, row: RunOutput) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if row.artifact_id:
        props["artifactId"] = row.artifact_id
    if row.artifact_uri:
        props["artifactUri"] = row.artifact_uri
    props["provisioningState"] = row.provisioning_state
    return {
        "id": path.resource_id() + f"/runOutputs/{row.name}",
        "name": row.name,
        "type": RUN_OUTPUT_TYPE,
        "properties": props,
    }


def operation(op: Operation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": operation_path(op.subscription_key, op.location, op.id),
        "name": op.id,
        "status": op.status,
        "startTime": iso(op.start_time),
    }
    if op.end_time is not None:
        body["endTime"] = iso(op.end_time)
    if op.error:
        body["error"] = {"code": op.error.get("code"), "message": op.error.get("message"), "details": []}
    return body


def lro_headers(base_url: str, op: Operation, api_version: str, retry_after: int, *, async_header: bool = True,
                location: bool = False) -> dict[str, str]:
    h: dict[str, str] = {}
    q = f"?api-version={api_version}"
    if async_header:
        h["Azure-AsyncOperation"] = base_url + operation_path(op.subscription_key, op.location, op.id) + q
    if location:
        h["Location"] = base_url + operation_result_path(op.subscription_key, op.location, op.id) + q
    h["Retry-After"] = str(retry_after)
    return h


_OPS = (
    ("register/action", None, "Register Virtual Machine Image Builder RP"),
    ("unregister/action", None, "Unregister Virtual Machine Image Builder RP"),
    ("imageTemplates/read", "VM Image template", "Get a VM image template instance resource"),
    ("imageTemplates/write", "VM Image template", "Create or update a VM image template instance resource"),
    ("imageTemplates/delete", "VM Image template", "Delete a VM image template instance resource"),
    ("imageTemplates/run/action", "VM Image template", "Execute a VM image template to produce its outputs"),
    ("imageTemplates/runOutputs/read", "VM Image template run output", "Get a VM image template run output resource"),
    ("operations/read", "Operation", "List available Virtual Machine Image Builder Operations"),
    ("locations/operations/read", "Asynchronous Operation", "Get the status of an asynchronous operation"),
    ("imageTemplates/cancel/action", "VM Image template", "Cancel a running image build"),
    ("imageTemplates/triggers/write", "Trigger", "Create or update a trigger for a VM image template resource"),
    ("imageTemplates/triggers/read", "Trigger", "Get a trigger for a VM image template resource"),
    ("imageTemplates/triggers/delete", "Trigger", "Delete a trigger for a VM image template resource"),
)


def provider_operations() -> list[dict[str, Any]]:
    out = []
    for suffix, resource, text in _OPS:
        display = {"provider": "Virtual Machine Image Builder", "operation": text, "description": text}
        if resource:
            display["resource"] = resource
        out.append({"name": f"Microsoft.VirtualMachineImages/{suffix}", "display": display, "isDataAction": False})
    return out
