"""Authorization: does a principal hold a role that allows an action over a scope?

Role assignments are read from the database at most once a second per principal (``ttl``), so that a check
costs a dict lookup; a change made by ``vmforge role assign`` on the database takes effect within ``ttl``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vmforge.errors import Forbidden
from vmforge.identity.roles import Role, covers, subscription_of
from vmforge.identity.store import IdentityStore


@dataclass(frozen=True)
class Grant:
    role: Role
    scope_key: str


class Authorizer:
    def __init__(self, store: IdentityStore, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, bool, tuple[Grant, ...]]] = {}
        self._lock = threading.Lock()

    def _entry(self, object_id: str) -> tuple[bool, tuple[Grant, ...]]:
        now = self._clock()
        hit = self._cache.get(object_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1], hit[2]
        exists = self.store.exists(object_id)
        roles = self.store.roles_by_id()
        grants = tuple(Grant(roles[a.role], a.scope_key) for a in self.store.assignments(object_id)
                       if a.role in roles)  # an assignment of a deleted custom role grants nothing
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[object_id] = (now, exists, grants)
        return exists, grants

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def registered(self, object_id: str) -> bool:
        """Is ``object_id`` a (not deleted) service principal of the local issuer?"""
        return self._entry(object_id)[0]

    def grants(self, object_id: str) -> tuple[Grant, ...]:
        return self._entry(object_id)[1]

    def allowed(self, object_id: str, action: str, scope: str, *, within: bool = False) -> bool:
        """True when an assignment covering ``scope`` allows ``action``; with ``within``, an assignment anywhere
        in ``scope``'s subscription counts too (used for operation-status polls, which live at subscription scope
        but belong to a resource the caller may hold a role on)."""
        key = scope.rstrip("/").lower() or "/"
        sub = subscription_of(key)
        sub_key = f"/subscriptions/{sub}" if within and sub else None
        for g in self.grants(object_id):
            if not g.role.allows(action):
                continue
            if covers(g.scope_key, key) or (sub_key is not None and covers(sub_key, g.scope_key)):
                return True
        return False

    def check(self, object_id: str, client: str, action: str, scope: str, *, within: bool = False) -> None:
        """Raise ARM's 403 ``AuthorizationFailed`` unless ``allowed``."""
        if not self.allowed(object_id, action, scope, within=within):
            raise Forbidden(
                f"The client '{client}' with object id '{object_id}' does not have authorization to perform "
                f"action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
                "please refresh your credentials.")

    def subscriptions(self, object_id: str) -> tuple[set[str], bool]:
        """The subscription ids the principal holds a role in, and whether it holds one at the root scope."""
        subs: set[str] = set()
        root = False
        for g in self.grants(object_id):
            sub = subscription_of(g.scope_key)
            if sub is None:
                root = True
            else:
                subs.add(sub)
        return subs, root
