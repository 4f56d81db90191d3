"""Resource groups (``Microsoft.Resources/resourceGroups``): every template, image, gallery and managed identity
lives in one that exists. No HTTP here: the API, the run engine and the CLI call these functions.

``require(db, subscription, group)`` is the one existence check (ARM's 404 ``ResourceGroupNotFound``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from vmforge.errors import ArmError, NotFound
from vmforge.service.ids import check_group, utcnow
from vmforge.store.db import Database
from vmforge.store.tenancy_models import ResourceGroup

GROUP_TYPE = "Microsoft.Resources/resourceGroups"


@dataclass(frozen=True)
class Group:
    subscription_id: str
    name: str
    location: str
    tags: dict[str, Any] = field(default_factory=dict)
    managed_by: str | None = None
    provisioning_state: str = "Succeeded"
    created_at: datetime | None = None

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"

    def to_arm(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "name": self.name, "type": GROUP_TYPE, "location": self.location,
                                "properties": {"provisioningState": self.provisioning_state}}
        if self.tags:
            body["tags"] = dict(self.tags)
        if self.managed_by:
            body["managedBy"] = self.managed_by
        return body


def _group(row: ResourceGroup) -> Group:
    return Group(row.subscription_id, row.name, row.location, dict(row.tags or {}), row.managed_by,
                 row.provisioning_state, row.created_at)


def not_found(subscription: str, group: str) -> ArmError:
    return NotFound(f"Resource group '{group}' could not be found.", code="ResourceGroupNotFound")


def get(db: Database, subscription: str, group: str) -> Group | None:
    with db.read() as s:
        row = s.scalars(select(ResourceGroup).where(ResourceGroup.subscription_key == subscription.lower(),
                                                    ResourceGroup.group_key == group.lower())).first()
        return _group(row) if row is not None else None


def require(db: Database, subscription: str, group: str) -> Group:
    """The group, or ARM's 404 ``ResourceGroupNotFound`` (also while it is being deleted)."""
    g = get(db, subscription, group)
    if g is None or g.provisioning_state == "Deleting":
        raise not_found(subscription, group)
    return g


def create_or_update(db: Database, subscription: str, group: str, location: str,
                     tags: dict[str, Any] | None = None, managed_by: str | None = None) -> tuple[Group, bool]:
    """Create the group or update its tags (ARM keeps the first location: a different one is a 409
    ``InvalidResourceGroupLocation``); returns it and whether it was created."""
    check_group(group)
    with db.session() as s:
        row = s.scalars(select(ResourceGroup).where(ResourceGroup.subscription_key == subscription.lower(),
                                                    ResourceGroup.group_key == group.lower())).first()
        if row is not None:
            if row.provisioning_state == "Deleting":
                raise ArmError(f"The resource group '{group}' is in deprovisioning state and cannot perform "
                               "this operation.", code="ResourceGroupBeingDeleted", status=409)
            if row.location.replace(" ", "").lower() != location.replace(" ", "").lower():
                raise ArmError(f"Invalid resource group location '{location}'. The Resource group already exists "
                               f"in location '{row.location}'.", code="InvalidResourceGroupLocation", status=409)
            if tags is not None:
                row.tags = dict(tags)
            if managed_by is not None:
                row.managed_by = managed_by
            return _group(row), False
        row = ResourceGroup(subscription_key=subscription.lower(), group_key=group.lower(),
                            subscription_id=subscription, name=group, location=location.replace(" ", "").lower(),
                            tags=dict(tags or {}), managed_by=managed_by, provisioning_state="Succeeded",
                            created_at=utcnow())
        s.add(row)
        s.flush()
        return _group(row), True


def ensure(db: Database, subscription: str, group: str, location: str) -> Group:
    """The group, created in ``location`` when missing (``vmforge --create-group``, tests)."""
    g = get(db, subscription, group)
    return g if g is not None else create_or_update(db, subscription, group, location)[0]


def list_groups(db: Database, subscription: str) -> list[Group]:
    with db.read() as s:
        rows = s.scalars(select(ResourceGroup).where(ResourceGroup.subscription_key == subscription.lower())
                         .order_by(ResourceGroup.group_key))
        return [_group(r) for r in rows]
