"""Tables of vmforge's own identity provider: service principals (client id + hashed secret) and role
assignments (a principal's object id, a built-in role, a scope).

Role assignments name principals by object id only (no foreign key): a principal of an external issuer
(an Entra ID tenant) has no row in ``service_principals`` but can still hold roles.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vmforge.store.models import Base, UTCDateTime


class ServicePrincipal(Base):
    """An application registered in vmforge: it logs in with client_credentials (``app_id`` + secret)."""

    __tablename__ = "service_principals"

    object_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(36), unique=True)
    display_name: Mapped[str] = mapped_column(String(256))
    # "scrypt$n$r$p$salt_b64$hash_b64" (vmforge.identity.hashing)
    secret_hash: Mapped[str] = mapped_column(String(256))
    bootstrap: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RoleAssignment(Base):
    """``principal_id`` holds the role ``role`` (a role definition id) over ``scope`` (``/``, ``/subscriptions/{id}`` or a resource group)."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        UniqueConstraint("principal_id", "role", "scope_key", name="uq_role_assignment"),
        Index("ix_role_assignments_principal", "principal_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(64))
    # the role definition's id: a built-in role's (vmforge.identity.roles) or a custom one's (role_definitions)
    role: Mapped[str] = mapped_column(String(64))
    principal_type: Mapped[str] = mapped_column(String(32), default="ServicePrincipal")
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scope: Mapped[str] = mapped_column(String(600))
    # lower-cased scope, without a trailing slash (ARM matches scopes case-insensitively)
    scope_key: Mapped[str] = mapped_column(String(600))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
