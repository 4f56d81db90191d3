"""ARM resource paths and ids for Microsoft.VirtualMachineImages."""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from vmforge.errors import ArmError, BadRequest

PROVIDER = "Microsoft.VirtualMachineImages"
TEMPLATE_TYPE = f"{PROVIDER}/imageTemplates"
RUN_OUTPUT_TYPE = f"{TEMPLATE_TYPE}/runOutputs"
TRIGGER_TYPE = f"{TEMPLATE_TYPE}/triggers"

# ARM's rules for resource group names; template/trigger names follow the service's own limits.
_GROUP_RE = re.compile(r"^[-\w._()]{1,90}$", re.UNICODE)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def location_key(location: str) -> str:
    """ARM treats 'West US', 'westus' and 'WestUS' as one region."""
    return location.replace(" ", "").lower()


def check_group(name: str) -> None:
    if not _GROUP_RE.match(name) or name.endswith("."):
        raise ArmError(f"Resource group name '{name}' is invalid.", code="InvalidResourceGroupName", status=400)


def check_name(name: str, what: str = "image template") -> None:
    if not _NAME_RE.match(name):
        raise ArmError(
            f"The {what} name '{name}' is invalid: use 1-64 letters, digits, '-', '_' or '.', starting with a "
            "letter or digit.",
            code="InvalidResourceName",
            status=400,
        )


@dataclass(frozen=True)
class TemplatePath:
    subscription: str
    group: str
    name: str

    @property
    def keys(self) -> tuple[str, str, str]:
        return self.subscription.lower(), self.group.lower(), self.name.lower()

    def resource_id(self, group: str | None = None, name: str | None = None) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{group or self.group}"
            f"/providers/{TEMPLATE_TYPE}/{name or self.name}"
        )


def template_id(subscription: str, group: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{TEMPLATE_TYPE}/{name}"


def operation_path(subscription: str, location: str, op_id: str) -> str:
    return f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location_key(location)}/operations/{op_id}"


def operation_result_path(subscription: str, location: str, op_id: str) -> str:
    return (
        f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location_key(location)}"
        f"/operationResults/{op_id}"
    )


def identity_ids(resource_id: str) -> tuple[str, str]:
    """Stable (principalId, clientId) for a user-assigned identity: AIB reports the identity's ids; vmforge,
    which has no directory of identities, derives fixed ones from the resource id."""
    key = resource_id.lower()
    return (
        str(uuid.uuid5(uuid.NAMESPACE_URL, "vmforge-principal:" + key)),
        str(uuid.uuid5(uuid.NAMESPACE_URL, "vmforge-client:" + key)),
    )


def encode_token(last_id: int) -> str:
    """A list page's ``$skipToken``: the row id the next page starts after (opaque to clients)."""
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        after = json.loads(raw)["after"]
        if not isinstance(after, int) or after < 0:
            raise ValueError
        return after
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise BadRequest("The $skipToken is invalid.", code="InvalidSkipToken", target="$skipToken") from None
