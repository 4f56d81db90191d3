"""``vmforge validate``: check image templates offline with the server's own validation (``vmforge.wire``).

Accepted inputs (detected by shape):

- a bare template: ``{"location", "identity", "properties", "tags"?}`` (a GET body sent back is fine too);
- a bare ``properties`` object (``{"source", "distribute", ...}``): validated as the ``properties`` of a
  template; ``location`` and ``identity`` are not checked (a note says so). Paths start with ``properties.``;
- an ARM resource: ``{"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion", "name", ...}``;
  its ``apiVersion`` is used unless ``--api-version`` is given; deployment-only keys (``dependsOn``,
  ``condition``, ``copy``, ``comments``, ``scope``) are ignored;
- an ARM deployment template: every ``Microsoft.VirtualMachineImages/imageTemplates`` in ``resources`` (a list,
  or the symbolic-name object of languageVersion 2.0) is validated.

ARM template expressions (``"[parameters('x')]"``) are opaque strings: an error whose value (or key) is an
expression is not reported, since the value is only known at deployment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vmforge.errors import ArmError, ErrorDetail, ValidationFailed

DEFAULT_API = "2025-10-01"
TYPE = "microsoft.virtualmachineimages/imagetemplates"
DEPLOYMENT_ONLY = ("apiVersion", "dependsOn", "condition", "copy", "comments", "scope", "type", "name")
_TARGET_PART = re.compile(r"\.?([A-Za-z_$][A-Za-z0-9_$]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")


@dataclass
class Item:
    """One template found in the input, and what validation said about it."""

    label: str
    body: Any
    api_version: str
    note: str = ""
    name: str | None = None
    errors: list[ErrorDetail] = field(default_factory=list)
    unchecked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.label, "apiVersion": self.api_version, "valid": not self.errors,
                "errors": [e.to_dict() for e in self.errors], "skippedExpressions": self.unchecked}


def is_expression(value: Any) -> bool:
    """An ARM template expression: ``"[...]"`` (``"[[..."`` is an escaped literal bracket)."""
    return isinstance(value, str) and value.startswith("[") and value.endswith("]") and not value.startswith("[[")


def parse_target(target: str) -> list[str | int] | None:
    """``properties.customize[1].inline`` → ``["properties", "customize", 1, "inline"]`` (None if unparsable)."""
    out: list[str | int] = []
    pos = 0
    while pos < len(target):
        m = _TARGET_PART.match(target, pos)
        if not m or m.end() == pos:
            return None
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(int(m.group(2)))
        else:
            out.append(re.sub(r"\\(.)", r"\1", m.group(3)))
        pos = m.end()
    return out


def involves_expression(body: Any, target: str | None) -> bool:
    """Whether the value at ``target``, or any key or value on the way to it, is an ARM expression."""
    path = parse_target(target) if target else None
    if not path:
        return False
    node = body
    for part in path:
        if is_expression(node) or (isinstance(part, str) and is_expression(part)):
            return True
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return is_expression(node)


def find_templates(doc: Any, label: str, api_version: str | None) -> list[Item]:
    """The templates in a parsed input file (see the module docstring for the accepted shapes)."""
    if not isinstance(doc, dict):
        return [Item(label, doc, api_version or DEFAULT_API)]
    if "resources" in doc:
        res = doc["resources"]
        pairs = list(res.items()) if isinstance(res, dict) else list(enumerate(res if isinstance(res, list) else []))
        found = []
        for key, r in pairs:
            if isinstance(r, dict) and str(r.get("type", "")).lower() == TYPE:
                where = f"resources[{key}]" if isinstance(key, int) else f"resources['{key}']"
                name = r.get("name")
                found.append(_resource(r, f"{label} {where}" + (f" ({name})" if isinstance(name, str) else ""),
                                       api_version))
        return found
    if str(doc.get("type", "")).lower() == TYPE:
        return [_resource(doc, label, api_version)]
    if "properties" not in doc and ("source" in doc or "distribute" in doc):
        wrapped = {"location": "placeholder", "identity": {"type": "None"}, "properties": doc}
        return [Item(label, wrapped, api_version or DEFAULT_API, note="a bare properties object: location and "
                     "identity not checked")]
    return [Item(label, doc, api_version or DEFAULT_API)]


def _resource(r: dict[str, Any], label: str, api_version: str | None) -> Item:
    version = api_version or r.get("apiVersion")
    body = {k: v for k, v in r.items() if k not in DEPLOYMENT_ONLY}
    name = r.get("name") if isinstance(r.get("name"), str) and not is_expression(r.get("name")) else None
    return Item(label, body, version if isinstance(version, str) else DEFAULT_API, name=name)


def check(item: Item) -> Item:
    """Validate one template with ``vmforge.wire.validate_template``; fill ``errors`` and ``unchecked``."""
    from vmforge import wire

    try:
        wire.validate_template(item.body, item.api_version)
    except ValidationFailed as e:
        for d in e.details:
            if involves_expression(item.body, d.target):
                item.unchecked += 1
            else:
                item.errors.append(d)
    except ArmError as e:
        item.errors.append(ErrorDetail(e.code, e.message, e.target))
    return item


def validate_file(path: Path, api_version: str | None = None) -> list[Item]:
    """Every template of a file, validated. Unreadable or non-JSON input is one item with one error."""
    label = str(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as e:
        return [Item(label, None, api_version or DEFAULT_API, errors=[ErrorDetail("InvalidRequestContent", str(e))])]
    items = find_templates(doc, label, api_version)
    if not items:
        return [Item(label, doc, api_version or DEFAULT_API, errors=[ErrorDetail(
            "NoImageTemplate", f"the deployment template has no resource of type {TYPE}")])]
    return [check(i) for i in items]


def validate(
    template: Annotated[list[Path], typer.Argument(help="Template files (bare template, bare properties, ARM "
                                                   "resource or ARM deployment template).", show_default=False)],
    api_version: Annotated[Optional[str], typer.Option("--api-version", help="Validate as this api-version "
                                                       "(default: the resource's apiVersion, else 2025-10-01).",
                                                       show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Validate image templates offline, with the same rules as the server; exit 1 if any has errors.

    Every error is printed with its JSON path. Example:

        vmforge validate template.json --api-version 2024-02-01
    """
    items = [i for p in template for i in validate_file(p, api_version)]
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in items], indent=2))
    else:
        for i in items:
            extra = "".join(f"; {x}" for x in (i.note, f"{i.unchecked} expression value(s) not checked"
                                               if i.unchecked else "") if x)
            if not i.errors:
                typer.echo(f"{i.label}: valid (api-version {i.api_version}{extra})")
                continue
            n = len(i.errors)
            typer.echo(f"{i.label}: {n} error{'s' if n != 1 else ''} (api-version {i.api_version}{extra})")
            for d in i.errors:
                typer.echo(f"  {d.target or '(template)'}: {d.message} [{d.code}]")
    raise typer.Exit(1 if any(i.errors for i in items) else 0)
