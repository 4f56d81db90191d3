"""Service principals and role assignments in the database. No HTTP here: the API, the token endpoint and the
``vmforge principal`` / ``vmforge role`` commands all call these functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, select

from vmforge.errors import Conflict, NotFound
from vmforge.identity import hashing
from vmforge.identity.roles import Role, normalize_scope, role_by_name
from vmforge.store.db import Database
from vmforge.store.identity_models import RoleAssignment, ServicePrincipal


@dataclass(frozen=True)
class Assignment:
    id: str
    principal_id: str
    role: str
    scope: str
    scope_key: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "principalId": self.principal_id, "roleDefinitionName": self.role,
                "scope": self.scope}


@dataclass(frozen=True)
class PrincipalInfo:
    object_id: str
    app_id: str
    display_name: str
    bootstrap: bool

    def to_dict(self) -> dict[str, object]:
        return {"appId": self.app_id, "id": self.object_id, "displayName": self.display_name,
                "bootstrap": self.bootstrap}


def _info(sp: ServicePrincipal) -> PrincipalInfo:
    return PrincipalInfo(sp.object_id, sp.app_id, sp.display_name, sp.bootstrap)


def _assignment(a: RoleAssignment) -> Assignment:
    return Assignment(a.id, a.principal_id, a.role, a.scope, a.scope_key)


class IdentityStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ principals
    def create_principal(self, name: str, *, bootstrap: bool = False) -> tuple[PrincipalInfo, str]:
        """Register an application; returns it and its client secret (shown once, stored hashed)."""
        secret = hashing.new_secret()
        sp = ServicePrincipal(object_id=str(uuid.uuid4()), app_id=str(uuid.uuid4()), display_name=name,
                              secret_hash=hashing.hash_secret(secret), bootstrap=bootstrap,
                              created_at=datetime.now(timezone.utc))
        with self.db.session() as s:
            s.add(sp)
        return _info(sp), secret

    def reset_secret(self, object_id: str) -> str:
        secret = hashing.new_secret()
        with self.db.session() as s:
            sp = s.get(ServicePrincipal, object_id)
            if sp is None:
                raise NotFound(f"The service principal '{object_id}' does not exist.")
            sp.secret_hash = hashing.hash_secret(secret)
        return secret

    def principals(self) -> list[PrincipalInfo]:
        with self.db.read() as s:
            return [_info(sp) for sp in s.scalars(select(ServicePrincipal).order_by(ServicePrincipal.created_at))]

    def bootstrap_principal(self) -> PrincipalInfo | None:
        with self.db.read() as s:
            sp = s.scalars(select(ServicePrincipal).where(ServicePrincipal.bootstrap.is_(True))).first()
            return _info(sp) if sp else None

    def find(self, ref: str) -> PrincipalInfo:
        """A principal by app id, object id or (unique) display name."""
        with self.db.read() as s:
            rows = list(s.scalars(select(ServicePrincipal).where(
                (ServicePrincipal.app_id == ref) | (ServicePrincipal.object_id == ref)
                | (ServicePrincipal.display_name == ref))))
        if not rows:
            raise NotFound(f"No service principal has the app id, object id or name '{ref}'.",
                           code="PrincipalNotFound")
        if len(rows) > 1:
            raise Conflict(f"Several service principals are named '{ref}'; use the app id.")
        return _info(rows[0])

    def exists(self, object_id: str) -> bool:
        with self.db.read() as s:
            return s.get(ServicePrincipal, object_id) is not None

    def authenticate(self, app_id: str, secret: str) -> PrincipalInfo | None:
        """The principal whose client id is ``app_id`` when ``secret`` is its secret, else None."""
        with self.db.read() as s:
            sp = s.scalars(select(ServicePrincipal).where(ServicePrincipal.app_id == app_id)).first()
        if sp is None:
            hashing.verify_secret(secret, hashing.hash_secret("x"))  # same cost for unknown ids
            return None
        return _info(sp) if hashing.verify_secret(secret, sp.secret_hash) else None

    def delete_principal(self, ref: str) -> PrincipalInfo:
        """Delete a principal and its role assignments (its tokens stop working within a second)."""
        info = self.find(ref)
        with self.db.session() as s:
            s.execute(delete(RoleAssignment).where(RoleAssignment.principal_id == info.object_id))
            s.execute(delete(ServicePrincipal).where(ServicePrincipal.object_id == info.object_id))
        return info

    # ------------------------------------------------------------------ role assignments
    def assign(self, principal_id: str, role: str | Role, scope: str) -> Assignment:
        """Give ``principal_id`` (an object id) ``role`` over ``scope``; idempotent."""
        r = role if isinstance(role, Role) else role_by_name(role)
        display, key = normalize_scope(scope)
        with self.db.session() as s:
            row = s.scalars(select(RoleAssignment).where(
                RoleAssignment.principal_id == principal_id, RoleAssignment.role == r.name,
                RoleAssignment.scope_key == key)).first()
            if row is None:
                row = RoleAssignment(id=str(uuid.uuid4()), principal_id=principal_id, role=r.name, scope=display,
                                     scope_key=key, created_at=datetime.now(timezone.utc))
                s.add(row)
            return _assignment(row)

    def assignments(self, principal_id: str | None = None) -> list[Assignment]:
        with self.db.read() as s:
            q = select(RoleAssignment).order_by(RoleAssignment.created_at)
            if principal_id is not None:
                q = q.where(RoleAssignment.principal_id == principal_id)
            return [_assignment(a) for a in s.scalars(q)]

    def remove(self, *, assignment_id: str | None = None, principal_id: str | None = None,
               role: str | None = None, scope: str | None = None) -> int:
        """Remove one assignment by id, or those matching principal (and role, and scope); returns the count."""
        q = delete(RoleAssignment)
        if assignment_id:
            q = q.where(RoleAssignment.id == assignment_id)
        elif principal_id:
            q = q.where(RoleAssignment.principal_id == principal_id)
            if role:
                q = q.where(RoleAssignment.role == role_by_name(role).name)
            if scope:
                q = q.where(RoleAssignment.scope_key == normalize_scope(scope)[1])
        else:
            raise ValueError("give an assignment id or a principal")
        with self.db.session() as s:
            return s.execute(q).rowcount or 0
