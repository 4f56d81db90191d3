"""User-assigned managed identities (``Microsoft.ManagedIdentity/userAssignedIdentities``).

An identity is a principal: its ``principal_id`` is the object id that role assignments name, its ``client_id``
the application id a token carries. It has no secret. vmforge mints tokens for it only for the build VM of a
run whose template names it (``vmProfile.userAssignedIdentities``, served at the metadata address), and checks
its role assignments whenever a run reads a source or writes a target on the template's behalf.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from vmforge.errors import ArmError, NotFound
from vmforge.service import groups
from vmforge.service.ids import utcnow
from vmforge.store.db import Database
from vmforge.store.tenancy_models import ManagedIdentity

IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
_ID = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.ManagedIdentity/"
                 r"userAssignedIdentities/([^/]+)$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")


@dataclass(frozen=True)
class Identity:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    principal_id: str
    client_id: str
    tenant_id: str
    tags: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
                f"{IDENTITY_TYPE}/{self.name}")

    def to_arm(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": IDENTITY_TYPE, "location": self.location,
                "tags": dict(self.tags),
                "properties": {"tenantId": self.tenant_id, "principalId": self.principal_id,
                               "clientId": self.client_id, "isolationScope": "None"}}


def _identity(row: ManagedIdentity) -> Identity:
    return Identity(row.subscription_id, row.resource_group, row.name, row.location, row.principal_id,
                    row.client_id, row.tenant_id, dict(row.tags or {}), row.created_at)


def parse_id(resource_id: str) -> tuple[str, str, str] | None:
    """``(subscription, group, name)`` of a userAssignedIdentities resource id, or None."""
    m = _ID.match(resource_id.strip().rstrip("/"))
    return (m.group(1), m.group(2), m.group(3)) if m else None


def _where(subscription: str, group: str, name: str):  # noqa: ANN202
    return (ManagedIdentity.subscription_key == subscription.lower(), ManagedIdentity.group_key == group.lower(),
            ManagedIdentity.name_key == name.lower())


def get(db: Database, subscription: str, group: str, name: str) -> Identity | None:
    with db.read() as s:
        row = s.scalars(select(ManagedIdentity).where(*_where(subscription, group, name))).first()
        return _identity(row) if row is not None else None


def by_id(db: Database, resource_id: str) -> Identity | None:
    """The identity a resource id names, or None (also for an id that is not an identity's)."""
    parts = parse_id(resource_id)
    return get(db, *parts) if parts else None


def by_principal(db: Database, principal_id: str) -> Identity | None:
    with db.read() as s:
        row = s.get(ManagedIdentity, principal_id)
        return _identity(row) if row is not None else None


def by_client(db: Database, client_id: str) -> Identity | None:
    with db.read() as s:
        row = s.scalars(select(ManagedIdentity).where(ManagedIdentity.client_id == client_id.lower())).first()
        return _identity(row) if row is not None else None


def create_or_update(db: Database, subscription: str, group: str, name: str, location: str, tenant_id: str,
                     tags: dict[str, Any] | None = None) -> tuple[Identity, bool]:
    """Create the identity (new principal and client ids) or update its tags; its group must exist."""
    if not _NAME.match(name):
        raise ArmError(f"Resource name '{name}' is invalid. The name can contain only letters, numbers, "
                       "underscores and hyphens; it must start with a letter or number and be 3 to 128 "
                       "characters long.", code="InvalidResourceName", status=400)
    groups.require(db, subscription, group)
    with db.session() as s:
        row = s.scalars(select(ManagedIdentity).where(*_where(subscription, group, name))).first()
        if row is not None:
            if location.replace(" ", "").lower() != row.location:
                raise ArmError(f"The resource '{name}' already exists in location '{row.location}'; a resource "
                               "cannot be moved by a PUT.", code="LocationNotAvailableForResource", status=409)
            if tags is not None:
                row.tags = dict(tags)
            return _identity(row), False
        row = ManagedIdentity(principal_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), tenant_id=tenant_id,
                              subscription_key=subscription.lower(), group_key=group.lower(),
                              name_key=name.lower(), subscription_id=subscription, resource_group=group, name=name,
                              location=location.replace(" ", "").lower(), tags=dict(tags or {}),
                              created_at=utcnow())
        s.add(row)
        return _identity(row), True


def list_identities(db: Database, subscription: str, group: str | None = None) -> list[Identity]:
    with db.read() as s:
        q = select(ManagedIdentity).where(ManagedIdentity.subscription_key == subscription.lower())
        if group is not None:
            q = q.where(ManagedIdentity.group_key == group.lower())
        return [_identity(r) for r in s.scalars(q.order_by(ManagedIdentity.group_key, ManagedIdentity.name_key))]


def delete_identity(db: Database, subscription: str, group: str, name: str) -> Identity | None:
    """Delete the identity (its role assignments stay, orphaned, as in Azure); None when there was none."""
    with db.session() as s:
        row = s.scalars(select(ManagedIdentity).where(*_where(subscription, group, name))).first()
        if row is None:
            return None
        ident = _identity(row)
        s.execute(delete(ManagedIdentity).where(ManagedIdentity.principal_id == row.principal_id))
        return ident


def require(db: Database, resource_id: str) -> Identity:
    ident = by_id(db, resource_id)
    if ident is None:
        raise NotFound(f"The user-assigned identity '{resource_id}' does not exist.", code="ResourceNotFound")
    return ident


ASSIGN_ACTION = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"


def template_identities(canonical: dict[str, Any]) -> list[tuple[str, tuple[str | int, ...]]]:
    """The identities a (validated) template names, each with the JSON path that names it: the template's own
    (``identity.userAssignedIdentities``) and the build VM's (``properties.vmProfile.userAssignedIdentities``)."""
    out: list[tuple[str, tuple[str | int, ...]]] = []
    for rid in ((canonical.get("identity") or {}).get("userAssignedIdentities") or {}):
        out.append((rid, ("identity", "userAssignedIdentities", rid)))
    vm = ((canonical.get("properties") or {}).get("vmProfile") or {})
    for i, rid in enumerate(vm.get("userAssignedIdentities") or []):
        out.append((rid, ("properties", "vmProfile", "userAssignedIdentities", i)))
    return out


def check_linked(db: Database, authorizer: Any, principal: Any, action: str, scope: str,
                 canonical: dict[str, Any]) -> None:
    """ARM's linked-access check of a template PUT/PATCH: the caller holds ``.../assign/action`` on every identity
    the template names (403 ``LinkedAuthorizationFailed`` naming it — whether or not it exists, so that the answer
    tells nothing about another tenant's resources), and each one exists. Records each identity's principal and
    client ids in ``canonical`` (the template reports them read-only)."""
    from vmforge.errors import ErrorDetail, Forbidden
    from vmforge.wire.errors import fmt_path

    for rid, path in template_identities(canonical):
        if not authorizer.allowed(principal.object_id, ASSIGN_ACTION, rid):
            raise Forbidden(
                f"The client '{principal.client}' with object id '{principal.object_id}' has permission to perform "
                f"action '{action}' on scope '{scope}'; however, it does not have permission to perform action(s) "
                f"'{ASSIGN_ACTION}' on the linked scope(s) '{rid}' (respectively) or the linked scope(s) are "
                "invalid.", code="LinkedAuthorizationFailed")
        ident = by_id(db, rid)
        if ident is None:
            target = fmt_path(path)
            raise ArmError(f"The user-assigned identity '{rid}' was not found.", code="FailedIdentityOperation",
                           status=400, target=target,
                           details=[ErrorDetail("FailedIdentityOperation", f"Identity '{rid}' does not exist.",
                                                target)])
        if path[0] == "identity":
            canonical["identity"]["userAssignedIdentities"][rid] = {"principalId": ident.principal_id,
                                                                    "clientId": ident.client_id}
