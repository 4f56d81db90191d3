"""Deleting a resource group and everything in it: ARM's long-running ``DELETE`` of a resource group.

``begin`` is one transaction: it refuses (409, nothing changed) while any template in the group has a run in
progress, else marks the group and its templates ``Deleting`` (so nothing new is created in it and no run
starts) and records the operation. ``finish`` then deletes the contents kind by kind — templates, gallery
versions, definitions and galleries, managed images (their blobs released), managed identities, the role
assignments at or below the group — each step its own idempotent transaction, and last the group itself
with the operation's success. A crash anywhere in between leaves the operation ``InProgress``; the next
start runs ``finish`` again (``Services.recover``) and it picks up what is left.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from vmforge.errors import ArmError, Conflict, NotFound
from vmforge.identity import managed
from vmforge.identity.roles import covers
from vmforge.identity.store import IdentityStore
from vmforge.service import groups
from vmforge.service.ids import utcnow
from vmforge.service.runstate import RunState
from vmforge.store.artifact_models import Gallery, GalleryImage, GalleryImageVersion, ManagedImage
from vmforge.store.models import Operation, Run, Template
from vmforge.store.tenancy_models import ResourceGroup, StagingResource

if TYPE_CHECKING:
    from vmforge.service.container import Services

log = logging.getLogger("vmforge.groups")
KIND = "group-delete"
_ACTIVE = (RunState.RUNNING.value, RunState.CANCELING.value)


def _group_id(subscription: str, group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def begin(services: Services, subscription: str, group: str) -> Operation:
    """Start deleting the group (see the module doc); a delete already under way is returned as is."""
    db = services.db
    with db.session() as s:
        row = s.scalars(groups._query(subscription, group).with_for_update()).first()
        if row is None:
            raise groups.not_found(subscription, group)
        rid = _group_id(row.subscription_id, row.name)
        if row.provisioning_state == "Deleting":
            op = s.scalars(select(Operation).where(Operation.kind == KIND, Operation.resource_id == rid,
                                                   Operation.status == "InProgress")).first()
            if op is not None:
                return op
        templates = list(s.scalars(select(Template).where(
            Template.subscription_key == row.subscription_key, Template.group_key == row.group_key)
            .with_for_update()))
        busy = sorted(set(s.scalars(select(Template.name).join(Run, Run.template_id == Template.id).where(
            Template.id.in_([t.id for t in templates]), Run.state.in_(_ACTIVE)))))
        if busy:
            raise Conflict(f"The resource group '{row.name}' cannot be deleted: image template(s) "
                           f"{', '.join(busy)} have a run in progress. Wait for the runs to end, or cancel them.",
                           code="ResourceGroupDeletionBlocked", target=row.name)
        row.provisioning_state = "Deleting"
        for t in templates:
            t.provisioning_state = "Deleting"
        now = utcnow()
        op = Operation(id=str(uuid.uuid4()).upper(), subscription_key=row.subscription_key,
                       location=row.location, kind=KIND, resource_id=rid, status="InProgress", start_time=now,
                       end_time=None)
        s.add(op)
        return op


def get_operation(services: Services, subscription: str, op_id: str) -> Operation:
    with services.db.read() as s:
        op = s.get(Operation, op_id.upper())
        if op is None or op.kind != KIND or op.subscription_key != subscription.lower():
            raise NotFound(f"The operation '{op_id}' was not found.", code="OperationNotFound", target=op_id)
        return op


def pending(services: Services) -> list[str]:
    with services.db.read() as s:
        return list(s.scalars(select(Operation.id).where(Operation.kind == KIND,
                                                         Operation.status == "InProgress")))


def finish(services: Services, op_id: str) -> None:
    """Delete what the group holds, then the group (idempotent: safe to repeat after a crash). An error
    fails the operation and gives the group back (``Succeeded``) with whatever is still in it, as ARM does."""
    db = services.db
    with db.read() as s:
        op = s.get(Operation, op_id)
        if op is None or op.kind != KIND or op.status != "InProgress":
            return
        parts = op.resource_id.split("/")
    subscription, group = parts[2], parts[4]
    try:
        _purge(services, subscription, group)
    except ArmError as e:
        log.warning("deleting resource group %s/%s failed: %s", subscription, group, e.message)
        _fail(services, op_id, subscription, group, {"code": e.code, "message": e.message})
        return
    except Exception as e:  # noqa: BLE001 — reported on the operation, the group handed back
        log.exception("deleting resource group %s/%s failed", subscription, group)
        _fail(services, op_id, subscription, group, {"code": "InternalServerError", "message": str(e)})
        return
    with db.session() as s:
        s.execute(delete(ResourceGroup).where(ResourceGroup.subscription_key == subscription.lower(),
                                              ResourceGroup.group_key == group.lower()))
        op = s.get(Operation, op_id, with_for_update=True)
        if op is not None:
            op.status, op.end_time = "Succeeded", utcnow()


def _fail(services: Services, op_id: str, subscription: str, group: str, error: dict[str, str]) -> None:
    with services.db.session() as s:
        row = s.scalars(groups._query(subscription, group).with_for_update()).first()
        if row is not None:
            row.provisioning_state = "Succeeded"
        for t in s.scalars(select(Template).where(Template.subscription_key == subscription.lower(),
                                                  Template.group_key == group.lower(),
                                                  Template.provisioning_state == "Deleting")):
            t.provisioning_state = "Succeeded"
        op = s.get(Operation, op_id, with_for_update=True)
        if op is not None:
            op.status, op.end_time, op.error = "Failed", utcnow(), error


def _purge(services: Services, subscription: str, group: str) -> None:
    db = services.db
    sub_key, group_key = subscription.lower(), group.lower()
    # Templates: their runs, outputs and triggers with them. No run can have started since ``begin``.
    with db.session() as s:
        for t in list(s.scalars(select(Template).where(Template.subscription_key == sub_key,
                                                       Template.group_key == group_key).with_for_update())):
            if s.scalars(select(Run.id).where(Run.template_id == t.id, Run.state.in_(_ACTIVE))).first():
                raise Conflict(f"The image template '{t.name}' has a run in progress.", code="Conflict")
            services.templates.purge(s, t)
    # Gallery versions, then definitions, then galleries (each service keeps its own checks and blob counts).
    arts = _artifacts(services)
    with db.read() as s:
        versions = list(s.execute(
            select(Gallery.name, GalleryImage.name, GalleryImageVersion.name)
            .join(GalleryImage, GalleryImage.gallery_id == Gallery.id)
            .join(GalleryImageVersion, GalleryImageVersion.image_id == GalleryImage.id)
            .where(Gallery.subscription_key == sub_key, Gallery.group_key == group_key)))
        definitions = list(s.execute(
            select(Gallery.name, GalleryImage.name).join(GalleryImage, GalleryImage.gallery_id == Gallery.id)
            .where(Gallery.subscription_key == sub_key, Gallery.group_key == group_key)))
        galleries = list(s.scalars(select(Gallery.name).where(Gallery.subscription_key == sub_key,
                                                              Gallery.group_key == group_key)))
        images = list(s.scalars(select(ManagedImage.name).where(ManagedImage.subscription_key == sub_key,
                                                                ManagedImage.group_key == group_key)))
    for gallery, image, version in versions:
        arts.versions.delete(subscription, group, gallery, image, version)
    for gallery, image in definitions:
        arts.galleries.delete_definition(subscription, group, gallery, image)
    for gallery in galleries:
        arts.galleries.delete_gallery(subscription, group, gallery)
    for image in images:
        arts.images.delete(subscription, group, image)
    # Managed identities (their own role assignments stay, as in Azure), then the assignments in the group.
    for ident in managed.list_identities(db, subscription, group):
        managed.delete_identity(db, subscription, group, ident.name)
    # What runs staged here (a template's staging group deleted under it: its next run fails, as in Azure).
    with db.session() as s:
        s.execute(delete(StagingResource).where(StagingResource.subscription_key == sub_key,
                                                   StagingResource.group_key == group_key))
    scope_key = _group_id(subscription, group).lower()
    store = IdentityStore(db)
    for a in store.assignments():
        if covers(scope_key, a.scope_key):
            store.remove(assignment_id=a.id)


def _artifacts(services: Services):  # noqa: ANN202
    """The server's artifact services (built here for a ``Services`` made without them, e.g. by a test)."""
    if services.artifacts is None:
        from vmforge.artifacts import Artifacts

        services.artifacts = Artifacts(services.db, services.settings.data_dir)
    return services.artifacts
