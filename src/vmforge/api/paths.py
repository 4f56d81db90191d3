"""ARM matches the fixed words of a path without regard to case (``resourcegroups`` = ``resourceGroups``,
``microsoft.virtualmachineimages`` = ``Microsoft.VirtualMachineImages``) but keeps names as written.

``CanonicalPathMiddleware`` rewrites only the fixed words — the keys before ``providers``, the provider
namespace and the resource-type and action segments after it — to one spelling before routing, so that the
routes can be declared once.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

_KEYS = {w.lower(): w for w in ("subscriptions", "resourceGroups", "providers", "tenants", "locations")}
_NAMESPACES = {w.lower(): w for w in ("Microsoft.VirtualMachineImages", "Microsoft.Compute", "Microsoft.Resources",
                                       "Microsoft.ManagedIdentity", "Microsoft.Authorization")}
_TYPES = {
    w.lower(): w
    for w in (
        "imageTemplates", "runOutputs", "triggers", "run", "cancel", "operations", "operationResults", "locations",
        "images", "galleries", "versions", "logs", "log", "runs",
        "publishers", "artifacttypes", "offers", "skus",
        "userAssignedIdentities", "roleDefinitions", "roleAssignments",
    )
}


def canonical_path(path: str) -> str:
    parts = path.split("/")
    out: list[str] = []
    i = 0
    n = len(parts)
    # Before 'providers': alternating fixed key / value.
    while i < n:
        seg = parts[i]
        if seg == "":
            out.append(seg)
            i += 1
            continue
        low = seg.lower()
        if low == "providers":
            out.append("providers")
            i += 1
            break
        if low in _KEYS:
            out.append(_KEYS[low])
            if i + 1 < n:
                out.append(parts[i + 1])
            i += 2
            continue
        out.append(seg)
        i += 1
    else:
        return "/".join(out)
    # The namespace, then alternating type / name.
    if i < n:
        out.append(_NAMESPACES.get(parts[i].lower(), parts[i]))
        i += 1
    type_pos = True
    while i < n:
        seg = parts[i]
        if seg.lower() == "providers" and type_pos and i + 1 < n:
            # An extension resource below a resource (a role assignment at an image's scope): its own
            # provider namespace, then type / name again.
            out += ["providers", _NAMESPACES.get(parts[i + 1].lower(), parts[i + 1])]
            i += 2
            continue
        if type_pos:
            out.append(_TYPES.get(seg.lower(), seg))
        else:
            out.append(seg)
        type_pos = not type_pos
        i += 1
    return "/".join(out)


class CanonicalPathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            new = canonical_path(path)
            if new != path:
                scope = dict(scope)
                scope["path"] = new
                scope["raw_path"] = new.encode()
        await self.app(scope, receive, send)
