"""Built-in roles, actions and scopes, with Azure RBAC's semantics.

An *action* names an operation the way Azure role definitions do, e.g.
``Microsoft.VirtualMachineImages/imageTemplates/write`` or ``.../imageTemplates/run/action``. A role allows an
action when one of its ``actions`` patterns matches it (``*`` is a wildcard, case-insensitive) and none of its
``not_actions`` does. A *scope* is ``/``, ``/subscriptions/{id}``, ``/subscriptions/{id}/resourceGroups/{rg}``
or a resource id below; an assignment covers its scope and everything below it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from vmforge.errors import BadRequest

# The actions of vmforge's routes (the build engine's routes use the run/cancel/read ones).
TEMPLATE_READ = "Microsoft.VirtualMachineImages/imageTemplates/read"
TEMPLATE_WRITE = "Microsoft.VirtualMachineImages/imageTemplates/write"
TEMPLATE_DELETE = "Microsoft.VirtualMachineImages/imageTemplates/delete"
TEMPLATE_RUN = "Microsoft.VirtualMachineImages/imageTemplates/run/action"
TEMPLATE_CANCEL = "Microsoft.VirtualMachineImages/imageTemplates/cancel/action"
RUN_OUTPUT_READ = "Microsoft.VirtualMachineImages/imageTemplates/runOutputs/read"
TRIGGER_READ = "Microsoft.VirtualMachineImages/imageTemplates/triggers/read"
TRIGGER_WRITE = "Microsoft.VirtualMachineImages/imageTemplates/triggers/write"
TRIGGER_DELETE = "Microsoft.VirtualMachineImages/imageTemplates/triggers/delete"
OPERATION_READ = "Microsoft.VirtualMachineImages/locations/operations/read"
SUBSCRIPTION_READ = "Microsoft.Resources/subscriptions/read"
RESOURCE_GROUP_READ = "Microsoft.Resources/subscriptions/resourceGroups/read"
RESOURCE_GROUP_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"
RESOURCE_GROUP_DELETE = "Microsoft.Resources/subscriptions/resourceGroups/delete"
LOCATIONS_READ = "Microsoft.Resources/subscriptions/locations/read"


def compute(resource: str, verb: str) -> str:
    """``Microsoft.Compute/{resource}/{verb}``, e.g. ``compute("galleries/images", "write")``."""
    return f"Microsoft.Compute/{resource}/{verb}"


@dataclass(frozen=True)
class Role:
    name: str
    id: str  # the role definition id Azure uses for the same role (a custom one for the operator role)
    description: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    custom: bool = False
    assignable_scopes: tuple[str, ...] = ("/",)

    def allows(self, action: str) -> bool:
        return any(_match(p, action) for p in self.actions) and not any(_match(p, action) for p in self.not_actions)


OWNER = Role("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Full access, including role assignments.", ("*",))
CONTRIBUTOR = Role("Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c",
                   "Full access to resources; cannot assign roles.", ("*",),
                   ("Microsoft.Authorization/*/Write", "Microsoft.Authorization/*/Delete"))
READER = Role("Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reads everything; changes and runs nothing.",
              ("*/read",))
OPERATOR = Role("Image Builder Operator", "6a6b1b4e-7f3a-4a8e-9c55-0b5d6f1e2a01",
                "Reads everything and runs or cancels image builds; cannot create, change or delete templates.",
                ("*/read", TEMPLATE_RUN, TEMPLATE_CANCEL))

USER_ACCESS_ADMIN = Role("User Access Administrator", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
                         "Lets you manage user access to Azure resources.",
                         ("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"))
MANAGED_IDENTITY_OPERATOR = Role(
    "Managed Identity Operator", "f1a07417-d97a-45cb-824c-7a7467783830", "Read and Assign User Assigned Identity",
    ("Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
     "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action", "Microsoft.Authorization/*/read",
     "Microsoft.Insights/alertRules/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
     "Microsoft.Resources/deployments/*", "Microsoft.Support/*"))
MANAGED_IDENTITY_CONTRIBUTOR = Role(
    "Managed Identity Contributor", "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
    "Create, Read, Update, and Delete User Assigned Identity",
    ("Microsoft.ManagedIdentity/userAssignedIdentities/read", "Microsoft.ManagedIdentity/userAssignedIdentities/write",
     "Microsoft.ManagedIdentity/userAssignedIdentities/delete", "Microsoft.Authorization/*/read",
     "Microsoft.Insights/alertRules/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
     "Microsoft.Resources/deployments/*", "Microsoft.Support/*"))

BUILTIN_ROLES: dict[str, Role] = {r.name.lower(): r for r in (OWNER, CONTRIBUTOR, READER, OPERATOR,
                                                             USER_ACCESS_ADMIN, MANAGED_IDENTITY_OPERATOR,
                                                             MANAGED_IDENTITY_CONTRIBUTOR)}


@lru_cache(maxsize=256)
def _pattern(p: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in p.split("*")) + "$", re.IGNORECASE)


def _match(pattern: str, action: str) -> bool:
    return _pattern(pattern).match(action) is not None


_SCOPE = re.compile(r"^/subscriptions/[^/]+(/resourceGroups/[^/]+(/providers/.+)?)?$", re.IGNORECASE)


def normalize_scope(scope: str) -> tuple[str, str]:
    """``(display, key)`` of a scope: the display keeps the case as given (``resourcegroups`` spelled
    ``resourceGroups``), the key is lower-cased; a trailing slash is dropped. Raises on a malformed scope."""
    s = "/" + scope.strip().strip("/")
    if s != "/" and not _SCOPE.match(s):
        raise BadRequest(f"The scope '{scope}' is not valid; use '/', '/subscriptions/{{id}}' or "
                         "'/subscriptions/{id}/resourceGroups/{name}'.", code="InvalidScope")
    s = re.sub(r"(?i)^(/subscriptions/[^/]+/)resourcegroups/", r"\1resourceGroups/", s)
    s = re.sub(r"(?i)^/subscriptions/", "/subscriptions/", s)
    return s, s.lower()


def covers(assignment_key: str, target_key: str) -> bool:
    """Does an assignment at ``assignment_key`` apply to ``target_key`` (both lower-cased)?"""
    return assignment_key == "/" or target_key == assignment_key or target_key.startswith(assignment_key + "/")


def subscription_of(scope_key: str) -> str | None:
    """The subscription id a (lower-cased) scope lies in, or None for the root scope."""
    parts = scope_key.strip("/").split("/")
    return parts[1] if len(parts) >= 2 and parts[0] == "subscriptions" else None


def resource_action(resource_id: str, verb: str) -> str | None:
    """The RBAC action of ``verb`` on the resource an id names: ``.../providers/Microsoft.Compute/galleries/g/images/
    d/versions/1.0.0`` + ``read`` → ``Microsoft.Compute/galleries/images/versions/read``; None for an id that names
    no provider resource."""
    parts = resource_id.strip("/").split("/")
    low = [p.lower() for p in parts]
    if "providers" not in low:
        return None
    i = len(low) - 1 - low[::-1].index("providers")
    rest = parts[i + 1:]
    if len(rest) < 3:
        return None
    types = rest[1::2]
    return "/".join([rest[0], *types, verb])
