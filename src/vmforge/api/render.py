"""ARM JSON for stored rows. Read-only fields are filled here, the way the service fills them."""

from __future__ import annotations

import copy
from typing import Any

from vmforge import wire
from vmforge.service.ids import (
    RUN_OUTPUT_TYPE,
    TEMPLATE_TYPE,
    TRIGGER_TYPE,
    TemplatePath,
    identity_ids,
    iso,
    operation_path,
    operation_result_path,
)
from vmforge.store.models import Operation, RunOutput, Template, Trigger


def _system_data(t: Template) -> dict[str, Any]:
    return {
        "createdBy": t.created_by,
        "createdByType": "Application",
        "createdAt": iso(t.created_at),
        "lastModifiedBy": t.modified_by,
        "lastModifiedByType": "Application",
        "lastModifiedAt": iso(t.modified_at),
    }


def _identity(identity: dict[str, Any] | None) -> dict[str, Any] | None:
    if not identity:
        return None
    out = {"type": identity.get("type")}
    uais = identity.get("userAssignedIdentities")
    if uais:
        rendered = {}
        for rid in uais:
            principal, client = identity_ids(rid)
            rendered[rid] = {"principalId": principal, "clientId": client}
        out["userAssignedIdentities"] = rendered
    return out


def _exact_version(source: dict[str, Any]) -> None:
    """Fill ``exactVersion`` where the source names one (``latest`` is resolved when a run starts)."""
    kind = source.get("type")
    if kind == "PlatformImage":
        version = source.get("version")
        if version and version.lower() != "latest":
            source["exactVersion"] = version
    elif kind == "SharedImageVersion":
        last = str(source.get("imageVersionId", "")).rstrip("/").rsplit("/", 1)[-1]
        if last and last.lower() != "latest":
            source["exactVersion"] = last


def template(t: Template, api_version: str) -> dict[str, Any]:
    props = wire.render_template_properties(copy.deepcopy(t.properties), api_version)
    if isinstance(props.get("source"), dict):
        _exact_version(props["source"])
    props["provisioningState"] = t.provisioning_state
    if t.provisioning_error:
        props["provisioningError"] = t.provisioning_error
    if t.last_run_status:
        props["lastRunStatus"] = t.last_run_status
    props["exactStagingResourceGroup"] = t.staging_resource_group
    body: dict[str, Any] = {
        "id": TemplatePath(t.subscription_id, t.resource_group, t.name).resource_id(),
        "name": t.name,
        "type": TEMPLATE_TYPE,
        "location": t.location,
    }
    if t.tags:
        body["tags"] = t.tags
    ident = _identity(t.identity)
    if ident is not None:
        body["identity"] = ident
    body["properties"] = props
    body["systemData"] = _system_data(t)
    return body


def trigger(path: TemplatePath, row: Trigger) -> dict[str, Any]:
    return {
        "id": path.resource_id() + f"/triggers/{row.name}",
        "name": row.name,
        "type": TRIGGER_TYPE,
        "properties": {
            "kind": row.kind,
            "status": {"code": row.status_code, "message": row.status_message, "time": iso(row.status_time)},
            "provisioningState": row.provisioning_state,
        },
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
