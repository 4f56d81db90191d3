"""Shared pieces of the artifact services: the operation row written with each change, keys. (Request bodies
are validated by the Compute wire models, ``vmforge.wire.compute``.)"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from vmforge.service.ids import location_key, utcnow
from vmforge.store.models import Operation


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
