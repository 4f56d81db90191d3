"""A run acts as its template's identity: every artifact it reads (a managed image or gallery version as the
source) or writes (a managed image, a gallery image version) is checked against the role assignments of the
template's user-assigned identity, in whatever subscription the artifact lies — as Azure Image Builder does. A
template without an identity can build only from platform images and into the server's own VHD store.

The refusal names the identity, the action and the scope, so the fix (a role assignment) is evident.
"""

from __future__ import annotations

from typing import Any

from vmforge.identity import managed
from vmforge.identity.rbac import Authorizer
from vmforge.identity.roles import resource_action
from vmforge.identity.store import IdentityStore
from vmforge.kinds.base import BuildError
from vmforge.store.db import Database


class RunAccess:
    """``check(verb, resource_id, what)`` raises ``BuildError`` (code ``AuthorizationFailed``) unless the
    template's identity may perform ``verb`` on the resource."""

    def __init__(self, db: Database, identity: dict[str, Any] | None, writer: str | None = None,
                 writer_name: str | None = None, authorizer: Authorizer | None = None) -> None:
        self.authorizer = authorizer or Authorizer(IdentityStore(db), ttl=0)
        rids = list(((identity or {}).get("userAssignedIdentities") or {}))
        self.resource_id = rids[0] if rids else None
        self.identity = managed.by_id(db, self.resource_id) if self.resource_id else None
        self.writer, self.writer_name = writer, writer_name or writer

    def describe(self) -> str:
        if self.resource_id is None:
            return (f"writer '{self.writer_name}' (object id {self.writer}; the template has no identity)"
                    if self.writer else "nobody (the template has no identity and no recorded writer)")
        if self.identity is None:
            return f"identity '{self.resource_id}' (which no longer exists)"
        return f"identity '{self.identity.id}' (client id {self.identity.client_id})"

    def check(self, verb: str, resource_id: str, what: str) -> None:
        action = resource_action(resource_id, verb) or f"*/{verb}"
        if self.resource_id is None:
            if self.writer and self.authorizer.allowed(self.writer, action, resource_id):
                return
            raise BuildError(f"{what}: the image template has no user-assigned identity, so the run acts as "
                             f"{self.describe()}, who does not have authorization to perform action '{action}' "
                             f"over scope '{resource_id}'. Give the template an identity "
                             "(identity.userAssignedIdentities) that holds a role allowing it there.",
                             code="AuthorizationFailed")
        if self.identity is None:
            raise BuildError(f"{what}: the template's identity '{self.resource_id}' does not exist (it was "
                             "deleted); create it again and assign it its roles.", code="AuthorizationFailed")
        if not self.authorizer.allowed(self.identity.principal_id, action, resource_id):
            raise BuildError(
                f"{what}: the template's identity '{self.identity.id}' (client id '{self.identity.client_id}', "
                f"object id '{self.identity.principal_id}') does not have authorization to perform action "
                f"'{action}' over scope '{resource_id}'. Assign it a role that allows it at that scope "
                f"(az role assignment create --assignee-object-id {self.identity.principal_id} "
                f"--assignee-principal-type ServicePrincipal --role <role> --scope <scope>).",
                code="AuthorizationFailed")

    def preflight(self, props: dict[str, Any]) -> tuple[str | None, list[str]]:
        """Before anything boots: the refusal of the source (or None), and the refusals of the distribution
        targets (the run fails at once when every target is refused; otherwise those distributors fail when they
        run and the run ends PartiallySucceeded)."""
        source = props.get("source") or {}
        ref = source.get("imageId") or source.get("imageVersionId")
        source_error = None
        if ref:
            try:
                self.check("read", ref, "Source")
            except BuildError as e:
                source_error = str(e)
        refused = []
        for d in props.get("distribute") or []:
            target, what = _target(d)
            if target is None:
                continue
            try:
                self.check("write", target, what)
            except BuildError as e:
                refused.append(str(e))
        return source_error, refused


def _target(d: dict[str, Any]) -> tuple[str | None, str]:
    """The resource a distributor writes (a gallery image's next version is written below its definition)."""
    what = f"{d.get('type')} \"{d.get('runOutputName')}\""
    if d.get("type") == "ManagedImage":
        return d.get("imageId"), what
    if d.get("type") == "SharedImage":
        gid = (d.get("galleryImageId") or "").rstrip("/")
        return (gid if "/versions/" in gid.lower() else gid + "/versions/*"), what
    return None, what
