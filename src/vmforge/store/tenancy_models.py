"""Tables of the ARM resources that scope everything else: resource groups, user-assigned managed identities
and custom role definitions (the built-in roles live in code, ``vmforge.identity.roles``).

Keys are lower-cased ARM path parts, as in ``vmforge.store.models``; names keep the case they were created with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vmforge.store.models import Base, UTCDateTime


class ResourceGroup(Base):
    """Microsoft.Resources/resourceGroups. ``provisioning_state`` is ``Succeeded`` or ``Deleting``."""

    __tablename__ = "resource_groups"
    __table_args__ = (UniqueConstraint("subscription_key", "group_key", name="uq_resource_group"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_key: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(90))
    subscription_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(90))
    location: Mapped[str] = mapped_column(String(64))
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    managed_by: Mapped[str | None] = mapped_column(String(600), nullable=True)
    provisioning_state: Mapped[str] = mapped_column(String(16), default="Succeeded")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ManagedIdentity(Base):
    """Microsoft.ManagedIdentity/userAssignedIdentities: a principal (``principal_id`` is its object id, the
    one role assignments name; ``client_id`` is its application id) that never holds a secret — tokens for it
    are minted only for the build VMs of runs whose template names it."""

    __tablename__ = "managed_identities"
    __table_args__ = (UniqueConstraint("subscription_key", "group_key", "name_key", name="uq_managed_identity"),)

    principal_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    subscription_key: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(90))
    name_key: Mapped[str] = mapped_column(String(128))
    subscription_id: Mapped[str] = mapped_column(String(64))
    resource_group: Mapped[str] = mapped_column(String(90))
    name: Mapped[str] = mapped_column(String(128))
    location: Mapped[str] = mapped_column(String(64))
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RoleDefinition(Base):
    """A custom role (``Microsoft.Authorization/roleDefinitions``): ``permissions`` is ARM's list of
    ``{"actions", "notActions", "dataActions", "notDataActions"}``; ``assignable_scopes`` the scopes it may be
    assigned at (lower-cased copies in ``scope_keys``)."""

    __tablename__ = "role_definitions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    role_name: Mapped[str] = mapped_column(String(256))
    role_name_key: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str] = mapped_column(String(2048), default="")
    permissions: Mapped[list[Any]] = mapped_column(JSON)
    assignable_scopes: Mapped[list[Any]] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StagingResource(Base):
    """What a run creates for itself in its template's staging resource group while it lasts (its build and
    validation VMs and their OS disks), tagged with the template's ``managedResourceTags``. Rows exist exactly
    while the run holds the thing they name; ARM's list of a group's resources shows them."""

    __tablename__ = "staging_resources"
    __table_args__ = (UniqueConstraint("subscription_key", "group_key", "type_key", "name_key",
                                       name="uq_staging_resource"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_key: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(90), index=True)
    type_key: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(String(128))
    subscription_id: Mapped[str] = mapped_column(String(64))
    resource_group: Mapped[str] = mapped_column(String(90))
    type: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    location: Mapped[str] = mapped_column(String(64))
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    template_id: Mapped[int] = mapped_column(Integer, index=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
