"""Service principals and role assignments in the database. No HTTP here: the API, the token endpoint and the
``vmforge principal`` / ``vmforge role`` commands all call these functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, select

from vmforge.errors import BadRequest, Conflict, NotFound
from vmforge.identity import hashing
from vmforge.identity.roles import BUILTIN_ROLES, Role, covers, normalize_scope
from vmforge.store.db import Database
from vmforge.store.identity_models import RoleAssignment, ServicePrincipal
from vmforge.store.tenancy_models import ManagedIdentity, RoleDefinition


@dataclass(frozen=True)
class Assignment:
    id: str
    principal_id: str
    role: str  # the role definition id
    scope: str
    scope_key: str
    principal_type: str = "ServicePrincipal"
    role_name: str = ""
    created_by: str | None = None
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "principalId": self.principal_id, "roleDefinitionName": self.role_name,
                "roleDefinitionId": self.role, "scope": self.scope}


def custom_role(d: RoleDefinition) -> Role:
    """A custom role definition row as a ``Role`` (the union of its permission blocks)."""
    actions: list[str] = []
    not_actions: list[str] = []
    for p in d.permissions or []:
        actions += list(p.get("actions") or [])
        not_actions += list(p.get("notActions") or [])
    return Role(d.role_name, d.id, d.description or "", tuple(actions), tuple(not_actions), custom=True,
                assignable_scopes=tuple(d.assignable_scopes or ()))


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


def _assignment(a: RoleAssignment, name: str = "") -> Assignment:
    return Assignment(a.id, a.principal_id, a.role, a.scope, a.scope_key, a.principal_type or "ServicePrincipal",
                      name, a.created_by, a.created_at)


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
        """Is ``object_id`` a principal of this server: a service principal or a managed identity?"""
        with self.db.read() as s:
            return s.get(ServicePrincipal, object_id) is not None or s.get(ManagedIdentity, object_id) is not None

    def authenticate(self, app_id: str, secret: str) -> PrincipalInfo | None:
        """The principal whose client id is ``app_id`` when ``secret`` is its secret, else None.

        An unknown id costs what a known id with a wrong secret does (one lookup, one scrypt with the same
        parameters), so the answer's timing does not tell which client ids exist."""
        with self.db.read() as s:
            sp = s.scalars(select(ServicePrincipal).where(ServicePrincipal.app_id == app_id)).first()
        ok = hashing.verify_secret(secret, sp.secret_hash if sp is not None else hashing.DUMMY_HASH)
        return _info(sp) if ok and sp is not None else None

    def delete_principal(self, ref: str) -> PrincipalInfo:
        """Delete a principal and its role assignments (its tokens stop working within a second)."""
        info = self.find(ref)
        with self.db.session() as s:
            s.execute(delete(RoleAssignment).where(RoleAssignment.principal_id == info.object_id))
            s.execute(delete(ServicePrincipal).where(ServicePrincipal.object_id == info.object_id))
        return info

    # ------------------------------------------------------------------ role definitions
    def role(self, ref: str | Role) -> Role:
        """A role by its definition id or its name (case-insensitive): built-in or custom. Raises ARM's
        ``RoleDefinitionDoesNotExist`` (400)."""
        if isinstance(ref, Role):
            return ref
        key = ref.strip().rsplit("/", 1)[-1].lower()
        for r in BUILTIN_ROLES.values():
            if key in (r.name.lower(), r.id):
                return r
        with self.db.read() as s:
            d = s.get(RoleDefinition, key) or s.scalars(
                select(RoleDefinition).where(RoleDefinition.role_name_key == ref.strip().lower())).first()
            if d is not None:
                return custom_role(d)
        known = ", ".join(r.name for r in BUILTIN_ROLES.values())
        raise BadRequest(f"The role '{ref}' does not exist; the built-in roles are: {known}.",
                         code="RoleDefinitionDoesNotExist")

    def custom_roles(self) -> list[Role]:
        with self.db.read() as s:
            return [custom_role(d) for d in s.scalars(select(RoleDefinition).order_by(RoleDefinition.role_name_key))]

    def roles_by_id(self) -> dict[str, Role]:
        """Every role, built-in and custom, by definition id."""
        out = {r.id: r for r in BUILTIN_ROLES.values()}
        out.update({r.id: r for r in self.custom_roles()})
        return out

    # ------------------------------------------------------------------ role assignments
    def assign(self, principal_id: str, role: str | Role, scope: str, *, principal_type: str = "ServicePrincipal",
               assignment_id: str | None = None, created_by: str | None = None) -> Assignment:
        """Give ``principal_id`` (an object id) ``role`` over ``scope``; idempotent. A custom role must list
        ``scope`` (or a scope above it) among its assignable scopes."""
        r = self.role(role)
        display, key = normalize_scope(scope)
        if r.custom and not any(covers(normalize_scope(a)[1], key) for a in r.assignable_scopes):
            raise BadRequest(f"The role '{r.name}' is not available for assignment at the requested scope "
                             f"'{display}'.", code="InvalidRoleAssignmentScope")
        with self.db.session() as s:
            row = s.scalars(select(RoleAssignment).where(
                RoleAssignment.principal_id == principal_id, RoleAssignment.role == r.id,
                RoleAssignment.scope_key == key)).first()
            if row is None:
                if assignment_id is not None and s.get(RoleAssignment, assignment_id) is not None:
                    raise Conflict("A role assignment with this id already exists for another principal, role "
                                   "or scope.", code="RoleAssignmentUpdateNotPermitted")
                row = RoleAssignment(id=assignment_id or str(uuid.uuid4()), principal_id=principal_id, role=r.id,
                                     principal_type=principal_type, created_by=created_by, scope=display,
                                     scope_key=key, created_at=datetime.now(timezone.utc))
                s.add(row)
            elif assignment_id is not None and row.id != assignment_id:
                raise Conflict("The role assignment already exists.", code="RoleAssignmentExists")
            return _assignment(row, r.name)

    def assignments(self, principal_id: str | None = None) -> list[Assignment]:
        names = {rid: r.name for rid, r in self.roles_by_id().items()}
        with self.db.read() as s:
            q = select(RoleAssignment).order_by(RoleAssignment.created_at)
            if principal_id is not None:
                q = q.where(RoleAssignment.principal_id == principal_id)
            return [_assignment(a, names.get(a.role, a.role)) for a in s.scalars(q)]

    def assignment(self, assignment_id: str) -> Assignment | None:
        with self.db.read() as s:
            a = s.get(RoleAssignment, assignment_id)
        if a is None:
            return None
        role = self.roles_by_id().get(a.role)
        return _assignment(a, role.name if role else a.role)

    def remove(self, *, assignment_id: str | None = None, principal_id: str | None = None,
               role: str | None = None, scope: str | None = None) -> int:
        """Remove one assignment by id, or those matching principal (and role, and scope); returns the count."""
        q = delete(RoleAssignment)
        if assignment_id:
            q = q.where(RoleAssignment.id == assignment_id)
        elif principal_id:
            q = q.where(RoleAssignment.principal_id == principal_id)
            if role:
                q = q.where(RoleAssignment.role == self.role(role).id)
            if scope:
                q = q.where(RoleAssignment.scope_key == normalize_scope(scope)[1])
        else:
            raise ValueError("give an assignment id or a principal")
        with self.db.session() as s:
            return s.execute(q).rowcount or 0


# ---------------------------------------------------------------------- in a caller's transaction
def assign_in(s: Any, principal_id: str, role: Role, scope: str, *, principal_type: str = "ServicePrincipal",
              created_by: str | None = None) -> None:
    """``IdentityStore.assign`` of a built-in role inside the caller's transaction (the service's own grants,
    e.g. Contributor on a staging group it creates with the template); idempotent."""
    display, key = normalize_scope(scope)
    row = s.scalars(select(RoleAssignment).where(RoleAssignment.principal_id == principal_id,
                                                 RoleAssignment.role == role.id,
                                                 RoleAssignment.scope_key == key)).first()
    if row is None:
        s.add(RoleAssignment(id=str(uuid.uuid4()), principal_id=principal_id, role=role.id,
                             principal_type=principal_type, created_by=created_by, scope=display, scope_key=key,
                             created_at=datetime.now(timezone.utc)))


def remove_at_or_below_in(s: Any, scope: str) -> int:
    """Every role assignment at ``scope`` or below it, in the caller's transaction (its scope is going away)."""
    key = normalize_scope(scope)[1]
    ids = [a.id for a in s.scalars(select(RoleAssignment)) if covers(key, a.scope_key)]
    if ids:
        s.execute(delete(RoleAssignment).where(RoleAssignment.id.in_(ids)))
    return len(ids)


# ---------------------------------------------------------------------- custom role definitions
def _check_actions(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) and a.strip() for a in value):
        raise BadRequest(f"'{where}' must be a list of action strings.", code="InvalidRoleDefinition",
                         target=where)
    return [a.strip() for a in value]


def _check_definition(props: Any) -> tuple[str, str, list[dict[str, list[str]]], list[str]]:
    """``(roleName, description, permissions, assignableScopes)`` of a roleDefinitions PUT body, validated."""
    if not isinstance(props, dict):
        raise BadRequest("The role definition has no 'properties'.", code="InvalidRoleDefinition",
                         target="properties")
    name = props.get("roleName")
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise BadRequest("'roleName' is required (1-256 characters).", code="InvalidRoleDefinition",
                         target="properties.roleName")
    desc = props.get("description") or ""
    if not isinstance(desc, str):
        raise BadRequest("'description' must be a string.", code="InvalidRoleDefinition",
                         target="properties.description")
    kind = props.get("type", "CustomRole")
    if kind not in (None, "CustomRole", "customrole"):
        raise BadRequest("Only custom roles can be created ('type': 'CustomRole').", code="InvalidRoleDefinition",
                         target="properties.type")
    perms_in = props.get("permissions")
    if not isinstance(perms_in, list) or not perms_in:
        raise BadRequest("'permissions' must be a non-empty list.", code="InvalidRoleDefinition",
                         target="properties.permissions")
    perms: list[dict[str, list[str]]] = []
    for i, p in enumerate(perms_in):
        if not isinstance(p, dict):
            raise BadRequest("A permission must be an object.", code="InvalidRoleDefinition",
                             target=f"properties.permissions[{i}]")
        perms.append({k: _check_actions(p.get(k), f"properties.permissions[{i}].{k}")
                      for k in ("actions", "notActions", "dataActions", "notDataActions")})
    if not any(p["actions"] or p["dataActions"] for p in perms):
        raise BadRequest("A role definition must allow at least one action.", code="InvalidRoleDefinition",
                         target="properties.permissions")
    scopes = props.get("assignableScopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise BadRequest("'assignableScopes' must list at least one scope.", code="InvalidRoleDefinition",
                         target="properties.assignableScopes")
    return name.strip(), desc, perms, [normalize_scope(s)[0] for s in scopes]


def put_definition(db: Database, role_id: str, props: Any, created_by: str | None) -> tuple[RoleDefinition, bool]:
    """Create or replace the custom role ``role_id`` (a GUID); a second role of the same name is a 409."""
    try:
        role_id = str(uuid.UUID(role_id))
    except ValueError:
        raise BadRequest(f"The role definition id '{role_id}' is not a valid GUID.",
                         code="InvalidRoleDefinitionId") from None
    if role_id in {r.id for r in BUILTIN_ROLES.values()}:
        raise Conflict("Built-in roles cannot be changed.", code="RoleDefinitionBuiltIn")
    name, desc, perms, scopes = _check_definition(props)
    now = datetime.now(timezone.utc)
    with db.session() as s:
        clash = s.scalars(select(RoleDefinition).where(RoleDefinition.role_name_key == name.lower(),
                                                       RoleDefinition.id != role_id)).first()
        if clash is not None or name.lower() in BUILTIN_ROLES:
            raise Conflict(f"A role definition named '{name}' already exists.",
                           code="RoleDefinitionWithSameNameExists")
        row = s.get(RoleDefinition, role_id)
        created = row is None
        if row is None:
            row = RoleDefinition(id=role_id, created_by=created_by, created_at=now)
            s.add(row)
        row.role_name, row.role_name_key, row.description = name, name.lower(), desc
        row.permissions, row.assignable_scopes, row.updated_at = perms, scopes, now
        s.flush()
        return row, created


def get_definition(db: Database, role_id: str) -> RoleDefinition | None:
    with db.read() as s:
        return s.get(RoleDefinition, role_id.lower())


def list_definitions(db: Database) -> list[RoleDefinition]:
    with db.read() as s:
        return list(s.scalars(select(RoleDefinition).order_by(RoleDefinition.role_name_key)))


def delete_definition(db: Database, role_id: str) -> RoleDefinition | None:
    """Delete a custom role; refused (409 ``RoleDefinitionHasAssignments``) while an assignment uses it."""
    with db.session() as s:
        row = s.get(RoleDefinition, role_id.lower())
        if row is None:
            return None
        used = s.scalars(select(RoleAssignment.id).where(RoleAssignment.role == row.id).limit(1)).first()
        if used is not None:
            raise Conflict(f"The role definition '{row.role_name}' cannot be deleted: role assignments use it.",
                           code="RoleDefinitionHasAssignments")
        s.delete(row)
        return row
