"""The ARM JSON of a template as each api-version shows it, rendered when the row is written.

Reads are the hot path (GET, and lists of thousands): every write of a template row renders its body once per
api-version into the row itself (``view_*`` columns, filled by a ``before_flush`` hook), so a read returns
stored text and a list page is a concatenation.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from vmforge import wire
from vmforge.service.ids import TEMPLATE_TYPE, TemplatePath, identity_ids, iso
from vmforge.store.models import VIEW_COLUMNS, Template


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
        for rid, known in uais.items():
            # The ids recorded at PUT (the identity's own); a template stored before identities were resources
            # reports the stable ids derived from the resource id.
            principal, client = identity_ids(rid)
            if isinstance(known, dict) and known.get("principalId"):
                principal, client = known["principalId"], known.get("clientId") or client
            rendered[rid] = {"principalId": principal, "clientId": client}
        out["userAssignedIdentities"] = rendered
    return out


def _exact_version(source: dict[str, Any]) -> None:
    """Fill ``exactVersion`` where the source names one (``latest`` is resolved when a run starts)."""
    kind = source.get("type")
    if source.get("exactVersion"):
        return  # recorded by a run that resolved 'latest'
    if kind == "PlatformImage":
        version = source.get("version")
        if version and version.lower() != "latest":
            source["exactVersion"] = version
    elif kind == "SharedImageVersion":
        # The swagger: the exact ARM id of the version; it differs from imageVersionId only for 'latest'.
        vid = str(source.get("imageVersionId", "")).rstrip("/")
        if vid and vid.rsplit("/", 1)[-1].lower() != "latest":
            source["exactVersion"] = vid


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



def render_views(t: Template) -> None:
    for version, column in VIEW_COLUMNS.items():
        setattr(t, column, json.dumps(template(t, version), separators=(",", ":")))


def view(t: Template, api_version: str) -> str:
    return getattr(t, VIEW_COLUMNS[api_version])


@event.listens_for(Session, "before_flush")
def _render_on_write(session: Session, _ctx, _instances) -> None:  # noqa: ANN001
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, Template) and (obj in session.new or session.is_modified(obj)):
            render_views(obj)
