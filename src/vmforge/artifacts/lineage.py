"""Lineage and revocation of artifacts (a vmforge extension; HCP Packer's ancestry and revocation, self-hosted).

Every artifact a run distributes — a managed image, a gallery image version, a VHD — gets a row in
``artifact_lineage`` (``vmforge.store.lineage_models``): the run (template id + run id + run output), the template
revision (the template row's ``version`` counter at run start and the sha256 of the properties the run built) and
the exact source it was built from (a platform URN with its resolved version, a managed image id, or a gallery
image version id — never ``latest``). Managed images and gallery versions also carry it as tags
(``vmforge.template``, ``vmforge.run``, ``vmforge.templateRevision``, ``vmforge.source``; values at most 256
characters, as in Azure — a longer value keeps its tail behind a leading ``…``, the full value is in the lineage
route).

A child of an artifact is any artifact built by a run whose source was that artifact. ``lineage()`` returns the
chain up (to the platform image, or to an artifact of unknown origin) and the tree down.

Revocation marks an artifact (and with ``cascade`` every descendant) revoked — who, when, why, stored on the row,
in the audit trail (``artifact_revocations``) and as the tag ``vmforge.revoked``. A revoked artifact is not
deleted and reads as before; but a run whose source is revoked fails before any VM boots (``begin``), and
``latest`` skips revoked gallery versions (``revoked_version_keys``, used by ``find_version``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmforge.artifacts import ids
from vmforge.errors import ArmError, BadRequest, NotFound
from vmforge.service.ids import iso, utcnow
from vmforge.store.db import Database
from vmforge.store.lineage_models import ArtifactLineage, RevocationEvent

log = logging.getLogger("vmforge.lineage")

TAG_MAX = 256
TAGS_MAX = 50  # tags per resource, as in Azure
REASON_MAX = 1000
TAG_TEMPLATE, TAG_RUN, TAG_REVISION, TAG_SOURCE, TAG_REVOKED = (
    "vmforge.template", "vmforge.run", "vmforge.templateRevision", "vmforge.source", "vmforge.revoked")
KIND_OF_STEP = {"ManagedImage": "ManagedImage", "SharedImage": "SharedImageVersion", "VHD": "VHD"}


class SourceRevoked(ArmError):
    status = 409
    code = "SourceRevoked"


def tag_value(text: str) -> str:
    """A valid Azure tag value (at most 256 characters): a longer one keeps its tail (the most specific part of
    an id), behind '…'."""
    return text if len(text) <= TAG_MAX else "…" + text[-(TAG_MAX - 1):]


def key_of(ref: str) -> str:
    return ref.strip().rstrip("/").lower()


def template_sha256(props: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(props, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ------------------------------------------------------------------------------------------ the live artifacts
@dataclass
class Live:
    """An existing managed image or gallery image version: its canonical id, kind and row."""

    id: str
    kind: str
    row: Any


def find_live(s: Session, artifact_id: str, *, target: str = "artifactId") -> Live | None:
    """The managed image or gallery image version ``artifact_id`` names (``versions/latest`` resolved), or None.
    Raises 400 InvalidResourceId for an id that names neither."""
    from vmforge.artifacts.gallery_versions import find_version
    from vmforge.artifacts.images import ImageService

    p = ids.parse(artifact_id, target=target)
    if p.kind == "image":
        row = ImageService.find(s, p.subscription, p.group, p.names[0])
        return Live(ids.image_id(row.subscription_id, row.resource_group, row.name), "ManagedImage", row) if row else None
    if p.kind == "version":
        row = find_version(s, p.subscription, p.group, *p.names)
        if row is None:
            return None
        from vmforge.artifacts.galleries import find_definition

        d = find_definition(s, p.subscription, p.group, p.names[0], p.names[1])
        from vmforge.store.artifact_models import Gallery

        g = s.get(Gallery, d.gallery_id)
        return Live(ids.version_id(row.subscription_id, row.resource_group, g.name, d.name, row.name),
                    "SharedImageVersion", row)
    raise BadRequest(f"'{artifact_id}' is a {p.kind}, not an artifact: name a managed image or a gallery image "
                     "version.", code="InvalidResourceId", target=target)


def _row_for(s: Session, key: str, live: Live | None) -> ArtifactLineage | None:
    """The lineage row of an artifact, if it was written for the artifact that exists now (an artifact deleted
    and made again under its id is another one). VHDs (no live row) match by key alone."""
    row = s.scalar(select(ArtifactLineage).where(ArtifactLineage.artifact_key == key))
    if row is None or live is None or row.kind == "VHD":
        return row
    return row if _same_time(row.artifact_created_at, live.row.created_at) else None


def _same_time(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and b is not None and abs((a - b).total_seconds()) < 0.001


def revoked_version_keys(s: Session, rows: list[Any], version_id: Callable[[Any], str]) -> set[str]:
    """Which of a definition's version rows are revoked (their ``name_key``s): ``latest`` skips them."""
    by_key = {key_of(version_id(r)): r for r in rows}
    if not by_key:
        return set()
    found = s.scalars(select(ArtifactLineage).where(ArtifactLineage.artifact_key.in_(list(by_key)),
                                                    ArtifactLineage.revoked_at.is_not(None)))
    return {by_key[x.artifact_key].name_key for x in found
            if _same_time(x.artifact_created_at, by_key[x.artifact_key].created_at)}


# ------------------------------------------------------------------------------------------- runs: begin, record
@dataclass
class RunLineage:
    """What a run knows at its start for the lineage of the artifacts it will distribute."""

    template_id: str
    run_id: int
    template_version: int
    template_sha256: str
    source_kind: str
    source_ref: str


@dataclass
class Start:
    refusal: str | None = None
    warning: str | None = None
    info: RunLineage | None = None


def _source_ref(s: Session, source: dict[str, Any], resolved: Any) -> str:
    kind = source.get("type")
    if kind == "PlatformImage":
        return ":".join([source["publisher"], source["offer"], source["sku"], resolved.exact_version or
                         source.get("version") or "latest"])
    if kind == "ManagedImage":
        live = find_live(s, source["imageId"], target="source.imageId")
        return live.id if live else source["imageId"]
    return resolved.exact_version or source.get("imageVersionId") or ""


def _revocation_text(row: ArtifactLineage) -> str:
    via = f" (revoked with its ancestor {row.revoked_via})" if row.revoked_via else ""
    return (f"was revoked on {iso(row.revoked_at)} by {row.revoked_by_name or row.revoked_by}{via}: "
            f"{row.revoke_reason}")


def begin(db: Database, run_id: int, source: dict[str, Any], resolved: Any) -> Start:
    """At a run's start, once its source is resolved and before any VM: refuse a revoked source (the reason is
    the run's message), warn of a revoked ancestor, and note what the lineage of its outputs will say."""
    from vmforge.store.models import Run, Template

    with db.read() as s:
        ref = _source_ref(s, source, resolved)
        start = Start()
        if source.get("type") in ("ManagedImage", "SharedImageVersion"):
            live = find_live(s, ref, target="source")
            row = _row_for(s, key_of(ref), live)
            if row is not None and row.revoked_at is not None:
                start.refusal = f"Source: the {source['type']} '{ref}' {_revocation_text(row)}"
            elif row is not None:
                for anc in _ancestors(s, row):
                    if anc.get("revocation"):
                        r = anc["revocation"]
                        start.warning = (f"warning: the source's ancestor {anc['id']} was revoked on {r['revokedAt']}"
                                         f" by {r['revokedBy']['name']}: {r['reason']} (the source itself is not)")
                        break
        run = s.get(Run, run_id)
        t = s.get(Template, run.template_id) if run else None
        if t is not None:
            tid = (f"/subscriptions/{t.subscription_id}/resourceGroups/{t.resource_group}/providers/"
                   f"Microsoft.VirtualMachineImages/imageTemplates/{t.name}")
            start.info = RunLineage(tid, run_id, t.version, template_sha256(t.properties or {}),
                                    source.get("type") or "", ref)
        return start


def record(db: Database, info: RunLineage | None, output_name: str, step_kind: str, out: dict[str, Any],
           events: Any = None) -> None:
    """After a distributor succeeded: its artifact's lineage row (replacing one of an older artifact under the
    same id) and, on a managed image or gallery version, the lineage tags. Never fails the distribution."""
    if info is None:
        return
    ref = out.get("artifact_id") or out.get("artifact_uri")
    if not ref:
        return
    try:
        with db.session() as s:
            kind = KIND_OF_STEP.get(step_kind, step_kind)
            live = find_live(s, ref) if kind != "VHD" else None
            artifact_id = live.id if live else ref
            key = key_of(artifact_id)
            row = s.scalar(select(ArtifactLineage).where(ArtifactLineage.artifact_key == key))
            if row is None:
                row = ArtifactLineage(artifact_key=key)
                s.add(row)
            else:  # another artifact once had this id: its history goes with it
                for ev in s.scalars(select(RevocationEvent).where(RevocationEvent.lineage_id == row.id)):
                    s.delete(ev)
            row.artifact_id, row.kind = artifact_id, kind
            row.artifact_created_at = live.row.created_at if live else None
            row.template_id, row.run_id, row.run_output = info.template_id, info.run_id, output_name
            row.template_version, row.template_sha256 = info.template_version, info.template_sha256
            row.source_kind, row.source_ref, row.source_key = info.source_kind, info.source_ref, key_of(info.source_ref)
            row.created_at = utcnow()
            row.revoked_at = row.revoked_by = row.revoked_by_name = row.revoke_reason = row.revoked_via = None
            row.revoke_cascade = False
            s.flush()
            skipped = False
            if live is not None:
                tags = dict(live.row.tags or {})
                tags.pop(TAG_REVOKED, None)
                ours = {TAG_TEMPLATE: tag_value(info.template_id), TAG_RUN: str(info.run_id),
                        TAG_REVISION: f"v{info.template_version} sha256:{info.template_sha256}",
                        TAG_SOURCE: tag_value(info.source_ref)}
                if len({**tags, **ours}) <= TAGS_MAX:
                    live.row.tags = {**tags, **ours}
                else:  # Azure allows 50 tags: the artifact's own come first; the lineage route has it all
                    skipped = True
            inherited = _inherit_revocation(s, row)
        if events is not None and inherited:
            events.line(f"lineage: {artifact_id} is revoked as it appears: its source {inherited}", "lineage")
        if events is not None and skipped:
            events.line(f"lineage tags not added to {artifact_id}: it already has {len(tags)} of Azure's "
                        f"{TAGS_MAX} tags (the lineage route has the lineage)", "lineage")
        if events is not None:
            events.line(f"lineage: {artifact_id} ← {info.source_ref} (run {info.run_id}, template revision "
                        f"v{info.template_version})", "lineage")
    except Exception as e:  # noqa: BLE001 — the artifact exists; say that its lineage could not be written
        log.exception("lineage of %s", ref)
        if events is not None:
            events.line(f"lineage of {ref} not recorded: {e}", "lineage")


def _inherit_revocation(s: Session, row: ArtifactLineage) -> str | None:
    """A new artifact whose source was revoked with cascade (while its run was past the source check) is
    revoked at once, as if it had existed then; the text says why, or None."""
    try:
        live = find_live(s, row.source_ref or "") if row.source_kind in ("ManagedImage", "SharedImageVersion") else None
    except ArmError:
        live = None
    src = _row_for(s, row.source_key or "", live) if live is not None else None
    if src is None or src.revoked_at is None or not src.revoke_cascade:
        return None
    via = src.revoked_via or src.artifact_id
    row.revoked_at, row.revoked_by, row.revoked_by_name, row.revoke_reason, row.revoked_via = (
        utcnow(), src.revoked_by, src.revoked_by_name, src.revoke_reason, via)
    row.revoke_cascade = True
    s.add(RevocationEvent(lineage_id=row.id, action="revoke", at=row.revoked_at, principal_id=src.revoked_by or "",
                          principal_name=src.revoked_by_name or "", reason=src.revoke_reason or "", via=via))
    text = _revocation_text(src)
    _set_revoked_tag(s, row, f"{iso(row.revoked_at)} by {src.revoked_by_name}: {src.revoke_reason}")
    return text


# ------------------------------------------------------------------------------------------------- reading
def _revocation(row: ArtifactLineage | None) -> dict[str, Any] | None:
    if row is None or row.revoked_at is None:
        return None
    return {"revokedAt": iso(row.revoked_at), "revokedBy": {"objectId": row.revoked_by, "name": row.revoked_by_name},
            "reason": row.revoke_reason, "cascadedFrom": row.revoked_via}


def _node(artifact_id: str, kind: str, row: ArtifactLineage | None, exists: bool | None) -> dict[str, Any]:
    node: dict[str, Any] = {"id": artifact_id, "kind": kind, "exists": exists, "run": None, "source": None,
                            "revoked": bool(row is not None and row.revoked_at is not None),
                            "revocation": _revocation(row)}
    if row is not None and row.run_id is not None:
        node["run"] = {"templateId": row.template_id, "runId": row.run_id, "runOutputName": row.run_output,
                       "templateVersion": row.template_version, "templateSha256": row.template_sha256,
                       "distributedAt": iso(row.created_at)}
    if row is not None and row.source_ref:
        node["source"] = {"kind": row.source_kind, "id": row.source_ref}
    return node


def _describe(s: Session, kind: str, ref: str) -> tuple[dict[str, Any], ArtifactLineage | None]:
    if kind == "PlatformImage":
        return {"id": ref, "kind": kind, "exists": None, "run": None, "source": None, "revoked": False,
                "revocation": None}, None
    if kind == "VHD":
        row = s.scalar(select(ArtifactLineage).where(ArtifactLineage.artifact_key == key_of(ref)))
        return _node(ref, kind, row, None), row
    try:
        live = find_live(s, ref)
    except ArmError:
        live = None
    row = _row_for(s, key_of(ref), live)
    if live is None:  # gone: what the row remembers of it, if anything
        row = s.scalar(select(ArtifactLineage).where(ArtifactLineage.artifact_key == key_of(ref)))
    return _node(live.id if live else ref, kind, row, live is not None), row


def _ancestors(s: Session, row: ArtifactLineage | None) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    while row is not None and row.source_ref and key_of(row.source_ref) not in seen:
        seen.add(key_of(row.source_ref))
        node, row = _describe(s, row.source_kind or "", row.source_ref)
        chain.append(node)
    return chain


def _children(s: Session, key: str) -> list[ArtifactLineage]:
    rows = s.scalars(select(ArtifactLineage).where(ArtifactLineage.source_key == key).order_by(ArtifactLineage.id))
    out = []
    for r in rows:
        if r.kind == "VHD":
            out.append(r)
            continue
        try:
            live = find_live(s, r.artifact_id)
        except ArmError:
            live = None
        if live is not None and _same_time(r.artifact_created_at, live.row.created_at):
            out.append(r)
    return out


def _descendants(s: Session, key: str, seen: set[str]) -> list[dict[str, Any]]:
    tree = []
    for r in _children(s, key):
        if r.artifact_key in seen:
            continue
        seen.add(r.artifact_key)
        node = _node(r.artifact_id, r.kind, r, True if r.kind != "VHD" else None)
        node["children"] = _descendants(s, r.artifact_key, seen)
        tree.append(node)
    return tree


def _history(s: Session, row: ArtifactLineage | None) -> list[dict[str, Any]]:
    if row is None:
        return []
    evs = s.scalars(select(RevocationEvent).where(RevocationEvent.lineage_id == row.id).order_by(RevocationEvent.id))
    return [{"action": e.action, "at": iso(e.at), "by": {"objectId": e.principal_id, "name": e.principal_name},
             "reason": e.reason, "cascadedFrom": e.via} for e in evs]


def _exact(artifact_id: str) -> None:
    """Revoking 'latest' would revoke another version each time: an exact version is required."""
    p = ids.parse(artifact_id, target="artifactId")
    if p.kind == "version" and p.names[-1].lower() == "latest":
        raise BadRequest("Name the exact version to revoke or unrevoke, not 'latest' (which moves as versions are "
                         "revoked).", code="InvalidParameter", target="artifactId")


def _require_live(s: Session, artifact_id: str) -> Live:
    live = find_live(s, artifact_id)
    if live is None:
        raise NotFound(f"The artifact '{artifact_id}' was not found.", code="ResourceNotFound", target="artifactId")
    return live


def lineage(db: Database, artifact_id: str, can_read: Callable[[str], bool] = lambda _id: True) -> dict[str, Any]:
    """The artifact, its chain up (parent first, the platform image or an artifact of unknown origin last), its
    descendants (a tree) and its revocation history. Artifacts the caller may not read show as ``hidden``."""
    with db.read() as s:
        live = _require_live(s, artifact_id)
        row = _row_for(s, key_of(live.id), live)
        seen = {key_of(live.id)}
        body = {"artifact": _node(live.id, live.kind, row, True), "ancestors": _ancestors(s, row),
                "descendants": _descendants(s, key_of(live.id), seen), "history": _history(s, row)}
    _hide(body["ancestors"], can_read)
    _hide(body["descendants"], can_read)
    return body


def _hide(nodes: list[dict[str, Any]], can_read: Callable[[str], bool]) -> None:
    for n in nodes:
        if n["kind"] != "PlatformImage" and n["id"].startswith("/") and not can_read(n["id"]):
            kids = n.get("children")
            n.clear()
            n.update({"id": None, "hidden": True, "revoked": None})
            if kids is not None:
                n["children"] = kids
        _hide(n.get("children") or [], can_read)


# ---------------------------------------------------------------------------------------------- revocation
@dataclass
class Caller:
    object_id: str
    name: str


@dataclass
class Outcome:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def check_reason(reason: Any, *, required: bool) -> str:
    if reason is None and not required:
        return ""
    if not isinstance(reason, str) or (required and not reason.strip()):
        raise BadRequest("'reason' is required: a non-empty string saying why.", code="InvalidParameter",
                         target="reason")
    if len(reason) > REASON_MAX:
        raise BadRequest(f"'reason' is longer than {REASON_MAX} characters.", code="InvalidParameter",
                         target="reason")
    return reason.strip()


def _subtree(s: Session, key: str) -> list[ArtifactLineage]:
    out, seen, todo = [], {key}, [key]
    while todo:
        for r in _children(s, todo.pop()):
            if r.artifact_key not in seen:
                seen.add(r.artifact_key)
                out.append(r)
                todo.append(r.artifact_key)
    return out


def _set_revoked_tag(s: Session, row: ArtifactLineage, text: str | None) -> None:
    if row.kind == "VHD":
        return
    live = find_live(s, row.artifact_id)
    if live is None:
        return
    tags = dict(live.row.tags or {})
    if text is None:
        tags.pop(TAG_REVOKED, None)
    elif TAG_REVOKED in tags or len(tags) < TAGS_MAX:  # never past Azure's 50 (the routes say it all)
        tags[TAG_REVOKED] = tag_value(text)
    live.row.tags = tags


def revoke(db: Database, artifact_id: str, caller: Caller, reason: str, *, cascade: bool = False,
           may_write: Callable[[str], bool] = lambda _id: True) -> Outcome:
    """Mark an artifact (and with ``cascade`` every descendant) revoked. Idempotent: an artifact already revoked
    keeps its first revocation (who, when, why) and is reported ``unchanged``. All or nothing: the caller must
    be allowed to write every artifact it would change (403 naming the first it may not)."""
    _exact(artifact_id)
    reason = check_reason(reason, required=True)
    with db.session() as s:
        live = _require_live(s, artifact_id)
        row = _row_for(s, key_of(live.id), live)
        if row is None:  # an artifact of unknown origin (made through the Compute API)
            row = s.scalar(select(ArtifactLineage).where(ArtifactLineage.artifact_key == key_of(live.id)))
            if row is not None:  # a row of an older artifact under this id
                s.delete(row)
                s.flush()
            row = ArtifactLineage(artifact_key=key_of(live.id), artifact_id=live.id, kind=live.kind,
                                  artifact_created_at=live.row.created_at, created_at=utcnow())
            s.add(row)
            s.flush()
        targets = [(row, None)] + ([(d, live.id) for d in _subtree(s, row.artifact_key)] if cascade else [])
        _check_writes([t for t, _ in targets if t.revoked_at is None], may_write)
        now, out = utcnow(), Outcome()
        for t, via in targets:
            if t.revoked_at is not None:
                out.unchanged.append(t.artifact_id)
                continue
            t.revoked_at, t.revoked_by, t.revoked_by_name, t.revoke_reason, t.revoked_via = (
                now, caller.object_id, caller.name, reason, via)
            t.revoke_cascade = cascade
            s.add(RevocationEvent(lineage_id=t.id, action="revoke", at=now, principal_id=caller.object_id,
                                  principal_name=caller.name, reason=reason, via=via))
            _set_revoked_tag(s, t, f"{iso(now)} by {caller.name}: {reason}")
            out.changed.append(t.artifact_id)
        return out


def unrevoke(db: Database, artifact_id: str, caller: Caller, reason: str | None = None, *, cascade: bool = False,
             may_write: Callable[[str], bool] = lambda _id: True) -> Outcome:
    """Lift a revocation (and with ``cascade`` those its revocation cascaded to its descendants). Audited."""
    _exact(artifact_id)
    reason = check_reason(reason, required=False)
    with db.session() as s:
        live = _require_live(s, artifact_id)
        row = _row_for(s, key_of(live.id), live)
        out = Outcome()
        if row is None:
            out.unchanged.append(live.id)
            return out
        targets = [(row, None)]
        if cascade:
            targets += [(d, live.id) for d in _subtree(s, row.artifact_key)
                        if d.revoked_via is not None and key_of(d.revoked_via) == row.artifact_key]
        _check_writes([t for t, _ in targets if t.revoked_at is not None], may_write)
        now = utcnow()
        for t, via in targets:
            if t.revoked_at is None:
                out.unchanged.append(t.artifact_id)
                continue
            t.revoked_at = t.revoked_by = t.revoked_by_name = t.revoke_reason = t.revoked_via = None
            t.revoke_cascade = False
            s.add(RevocationEvent(lineage_id=t.id, action="unrevoke", at=now, principal_id=caller.object_id,
                                  principal_name=caller.name, reason=reason, via=via))
            _set_revoked_tag(s, t, None)
            out.changed.append(t.artifact_id)
        return out


def _check_writes(rows: list[ArtifactLineage], may_write: Callable[[str], bool]) -> None:
    for r in rows:
        if r.kind != "VHD" and not may_write(r.artifact_id):
            raise ArmError(f"The caller may not write the descendant '{r.artifact_id}', so it cannot be revoked or "
                           "unrevoked with its ancestor; nothing was changed.", code="LinkedAuthorizationFailed",
                           status=403, target=r.artifact_id)
