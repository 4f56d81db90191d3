"""A template's staging resource group, as AIB keeps one: where its runs put what they create for themselves.

- ``stagingResourceGroup`` empty: the service creates ``IT_{group}_{template}_{guid}`` in the template's location
  and deletes it with the template (``exactStagingResourceGroup`` reports the name).
- A group that does not exist yet: created with that name, and likewise deleted with the template.
- A group that exists: it must be in the template's subscription and location and hold nothing (no resource, and
  not another template's staging group); it outlives the template, which takes only what it put there.

A group the service creates is tagged as AIB tags it (``createdBy``, ``imageTemplateName``,
``imageTemplateResourceGroupName``) plus the template's ``managedResourceTags``; what a run stages (its build and
validation VMs and their OS disks, ``StagingResource`` rows that live exactly as long as the VM) carries the
``managedResourceTags``. The template's user-assigned identity gets Contributor on a group the service creates,
as AIB grants it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from vmforge.errors import ArmError, BadRequest, Conflict
from vmforge.service import groups
from vmforge.service.ids import TemplatePath, check_group, location_key, utcnow
from vmforge.store.db import Database
from vmforge.store.models import Run, Template
from vmforge.store.tenancy_models import ResourceGroup, StagingResource

CREATED_BY = {"createdBy": "AzureVMImageBuilder"}
VM_TYPE = "Microsoft.Compute/virtualMachines"
DISK_TYPE = "Microsoft.Compute/disks"


def parse(group_id: str) -> tuple[str, str]:
    """``(subscription, group)`` of ``/subscriptions/{s}/resourceGroups/{g}``."""
    parts = group_id.strip("/").split("/")
    return parts[1], parts[3]


def _invalid(message: str, code: str = "InvalidStagingResourceGroup") -> ArmError:
    return BadRequest(message, code=code, target="properties.stagingResourceGroup")


def group_tags(path: TemplatePath, props: dict[str, Any]) -> dict[str, str]:
    return {**CREATED_BY, "imageTemplateName": path.name, "imageTemplateResourceGroupName": path.group,
            **(props.get("managedResourceTags") or {})}


def prepare(s: Session, path: TemplatePath, location: str, props: dict[str, Any], group_id: str,
            identity_principal: str | None) -> bool:
    """In the transaction that inserts the template: check or create its staging group; whether the service
    owns it (created it here). Raises a 4xx ARM error, and nothing is stored, for a group that cannot be used."""
    sub, name = parse(group_id)
    try:
        check_group(name)
    except ArmError as e:
        raise BadRequest(e.message, code=e.code, target="properties.stagingResourceGroup") from e
    if sub.lower() != path.subscription.lower():
        raise _invalid(f"The staging resource group '{group_id}' must be in the subscription of the image "
                       f"template ('{path.subscription}').")
    if name.lower() == path.group.lower():
        raise _invalid("The staging resource group cannot be the image template's own resource group: it must "
                       "hold nothing but what the service creates for the template's builds.")
    row = s.scalars(groups._query(sub, name).with_for_update()).first()
    if row is not None:
        if row.provisioning_state == "Deleting":
            raise Conflict(f"The staging resource group '{name}' is being deleted.", code="ResourceGroupBeingDeleted")
        if row.location != location_key(location):
            raise _invalid(f"The staging resource group '{name}' is in location '{row.location}'; it must be in the "
                           f"image template's location '{location_key(location)}'.")
        other = s.scalar(select(Template.name).where(Template.staging_resource_group.ilike(group_id.rstrip("/"))))
        if other is not None:
            raise Conflict(f"The staging resource group '{name}' is already the staging resource group of image "
                           f"template '{other}'; each template needs its own.", code="StagingResourceGroupInUse",
                           target="properties.stagingResourceGroup")
        held = groups.contents(s, sub, name)
        if held:
            listed = ", ".join(f"{r['type']}/{r['name']}" for r in held[:5]) + (" …" if len(held) > 5 else "")
            raise Conflict(f"The staging resource group '{name}' must be empty; it holds {len(held)} resource(s): "
                           f"{listed}.", code="StagingResourceGroupNotEmpty", target="properties.stagingResourceGroup")
        return False
    groups.create_in(s, sub, name, location, group_tags(path, props),
                     managed_by=path.resource_id())
    if identity_principal:
        from vmforge.identity.roles import CONTRIBUTOR
        from vmforge.identity.store import assign_in

        assign_in(s, identity_principal, CONTRIBUTOR, f"/subscriptions/{sub}/resourceGroups/{name}",
                  principal_type="ServicePrincipal", created_by="vmforge")
    return True


def retag(s: Session, t: Template) -> None:
    """The template's ``managedResourceTags`` changed (an update): a group the service owns follows them."""
    if not t.staging_group_owned:
        return
    sub, name = parse(t.staging_resource_group)
    row = s.scalars(groups._query(sub, name).with_for_update()).first()
    if row is not None:
        row.tags = group_tags(TemplatePath(t.subscription_id, t.resource_group, t.name), t.properties)


def release(s: Session, t: Template) -> None:
    """The template is being purged: what its runs staged goes, and so does a group the service created, with
    the role assignments in it — unless something else was put in it since, which is never deleted unasked."""
    s.execute(delete(StagingResource).where(StagingResource.template_id == t.id))
    if not t.staging_group_owned:
        return
    sub, name = parse(t.staging_resource_group)
    row = s.scalars(groups._query(sub, name).with_for_update()).first()
    if row is None or groups.contents(s, sub, name):
        return
    from vmforge.identity.store import remove_at_or_below_in

    remove_at_or_below_in(s, f"/subscriptions/{sub}/resourceGroups/{name}")
    s.delete(row)


def missing(db: Database, t_props_group: str) -> str | None:
    """Why a run cannot use the staging group (it was deleted), or None."""
    sub, name = parse(t_props_group)
    g = groups.get(db, sub, name)
    if g is None or g.provisioning_state == "Deleting":
        return (f"The staging resource group '{name}' of the image template no longer exists "
                f"({'it is being deleted' if g is not None else 'it was deleted'}); the build has nowhere to stage "
                "its resources. Delete and create the template again.")
    return None


# ---------------------------------------------------------------------- what a run stages
def stage(db: Database, run_id: int, role: str) -> None:
    """A run's VM (``role`` build or validate) started: its VM, OS disk and data disks appear in the staging
    group."""
    with db.session() as s:
        run = s.get(Run, run_id)
        t = s.get(Template, run.template_id) if run is not None else None
        if t is None:
            return
        sub, name = parse(t.staging_resource_group)
        if s.scalars(select(ResourceGroup.id).where(ResourceGroup.subscription_key == sub.lower(),
                                                    ResourceGroup.group_key == name.lower())).first() is None:
            return
        tags = dict((t.properties or {}).get("managedResourceTags") or {})
        vm = f"vmforge-{role}-{run_id}"
        data = [(DISK_TYPE, f"{vm}-datadisk-{lun}")  # additionalDataDisks, attached to both VMs
                for lun in range(len((t.properties or {}).get("additionalDataDisks") or []))]
        for rtype, rname in ((VM_TYPE, vm), (DISK_TYPE, f"{vm}-osdisk"), *data):
            exists = s.scalars(select(StagingResource.id).where(
                StagingResource.subscription_key == sub.lower(), StagingResource.group_key == name.lower(),
                StagingResource.type_key == rtype.lower(), StagingResource.name_key == rname.lower())).first()
            if exists is None:
                s.add(StagingResource(subscription_key=sub.lower(), group_key=name.lower(), type_key=rtype.lower(),
                                      name_key=rname.lower(), subscription_id=sub, resource_group=name, type=rtype,
                                      name=rname, location=t.location, tags=tags, template_id=t.id, run_id=run_id,
                                      created_at=utcnow()))


def unstage(db: Database, run_id: int) -> None:
    """The run's VMs are gone: so are their rows."""
    with db.session() as s:
        s.execute(delete(StagingResource).where(StagingResource.run_id == run_id))


def reap(db: Database) -> int:
    """At start: rows of runs that are no longer in progress (a crash between a VM's end and its row's)."""
    from vmforge.service.runstate import RunState

    active = [RunState.RUNNING.value, RunState.CANCELING.value]
    with db.session() as s:
        stale = list(s.scalars(select(StagingResource.id).outerjoin(Run, Run.id == StagingResource.run_id)
                               .where((Run.id.is_(None)) | (Run.state.not_in(active)))))
        if stale:
            s.execute(delete(StagingResource).where(StagingResource.id.in_(stale)))
        return len(stale)
