"""Shared pieces of the artifact services: request-body checks that collect every error, the operation row
written with each change, keys."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from vmforge.errors import ErrorDetail, ValidationFailed
from vmforge.service.ids import location_key, utcnow
from vmforge.store.models import Operation

OS_TYPES = ("Windows", "Linux")
OS_STATES = ("Generalized", "Specialized")
HYPERV_GENERATIONS = ("V1", "V2")
STORAGE_TYPES = ("Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS")


class Checker:
    """Collects violations with their JSON paths; ``raise_if_any`` raises one ``ValidationFailed``."""

    def __init__(self, body: Any) -> None:
        self.details: list[ErrorDetail] = []
        if not isinstance(body, dict):
            self.fail("", "The request body must be a JSON object.")
            body = {}
        self.body: dict[str, Any] = body

    def fail(self, target: str, message: str, code: str = "InvalidParameter") -> None:
        self.details.append(ErrorDetail(code, message, target or None))

    def obj(self, parent: dict[str, Any] | None, key: str, path: str, *, required: bool = False) -> dict[str, Any]:
        value = (parent or {}).get(key)
        if value is None:
            if required:
                self.fail(path, f"Required parameter '{path}' is missing (null).")
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"'{path}' must be an object.")
            return {}
        return value

    def string(self, parent: dict[str, Any] | None, key: str, path: str, *, required: bool = False) -> str | None:
        value = (parent or {}).get(key)
        if value is None or value == "":
            if required:
                self.fail(path, f"Required parameter '{path}' is missing (null).")
            return None
        if not isinstance(value, str):
            self.fail(path, f"'{path}' must be a string.")
            return None
        return value

    def enum(self, parent: dict[str, Any] | None, key: str, path: str, allowed: tuple[str, ...], *,
             required: bool = False, default: str | None = None) -> str | None:
        """A case-insensitive enum value, returned in its canonical spelling."""
        value = self.string(parent, key, path, required=required)
        if value is None:
            return default
        for a in allowed:
            if a.lower() == value.lower():
                return a
        self.fail(path, f"'{path}' has the value '{value}'; allowed values are {', '.join(allowed)}.")
        return default

    def integer(self, parent: dict[str, Any] | None, key: str, path: str, *, minimum: int = 0,
                default: int | None = None) -> int | None:
        value = (parent or {}).get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(path, f"'{path}' must be a whole number of at least {minimum}.")
            return default
        return value

    def boolean(self, parent: dict[str, Any] | None, key: str, path: str, default: bool = False) -> bool:
        value = (parent or {}).get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(path, f"'{path}' must be true or false.")
            return default
        return value

    def location(self) -> str:
        return self.string(self.body, "location", "location", required=True) or ""

    def tags(self) -> dict[str, str]:
        tags = self.body.get("tags")
        if tags is None:
            return {}
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            self.fail("tags", "'tags' must be an object whose values are strings.")
            return {}
        return tags

    def raise_if_any(self) -> None:
        if self.details:
            raise ValidationFailed.from_details(self.details)


def new_operation(s: Session, subscription: str, location: str, resource_id: str, kind: str,
                  status: str = "Succeeded") -> Operation:
    """The ARM asynchronous-operation row for a change (finished at once: artifact writes are synchronous)."""
    now = utcnow()
    op = Operation(id=str(uuid.uuid4()).upper(), subscription_key=subscription.lower(),
                   location=location_key(location), kind=kind, resource_id=resource_id, status=status,
                   start_time=now, end_time=None if status == "InProgress" else now)
    s.add(op)
    return op


def keys(sub: str, group: str, name: str) -> dict[str, str]:
    """Column values of a resource path (keys lower-cased, names as given)."""
    return {"subscription_key": sub.lower(), "group_key": group.lower(), "name_key": name.lower(),
            "subscription_id": sub, "resource_group": group, "name": name}
