"""Microsoft.Compute resource ids and names: building, parsing (case-insensitive, as ARM), name rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmforge.artifacts.errors import InvalidParameter

NS = "Microsoft.Compute"
IMAGE_TYPE = f"{NS}/images"
GALLERY_TYPE = f"{NS}/galleries"
GALLERY_IMAGE_TYPE = f"{NS}/galleries/images"
GALLERY_VERSION_TYPE = f"{NS}/galleries/images/versions"

_IMAGE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.\-]{0,78}[A-Za-z0-9_])?$")
_GALLERY_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.]{0,78}[A-Za-z0-9])?$")
_DEFINITION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.\-]{0,78}[A-Za-z0-9])?$")
_RULES = {
    "image": (_IMAGE_NAME, "1-80 letters, digits, '_', '.' or '-', starting with a letter or digit and ending with "
              "a letter, digit or '_'"),
    "gallery": (_GALLERY_NAME, "1-80 letters, digits, '_' or '.', starting and ending with a letter or digit"),
    "gallery image": (_DEFINITION_NAME, "1-80 letters, digits, '_', '.' or '-', starting and ending with a letter "
                      "or digit"),
}


def check_name(kind: str, name: str) -> None:
    rx, rule = _RULES[kind]
    if not rx.match(name):
        raise InvalidParameter(f"The {kind} name '{name}' is invalid: use {rule}.", code="InvalidResourceName",
                               target=name)


def rg_prefix(sub: str, group: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/{NS}"


def image_id(sub: str, group: str, name: str) -> str:
    return f"{rg_prefix(sub, group)}/images/{name}"


def gallery_id(sub: str, group: str, gallery: str) -> str:
    return f"{rg_prefix(sub, group)}/galleries/{gallery}"


def gallery_image_id(sub: str, group: str, gallery: str, image: str) -> str:
    return f"{gallery_id(sub, group, gallery)}/images/{image}"


def version_id(sub: str, group: str, gallery: str, image: str, version: str) -> str:
    return f"{gallery_image_id(sub, group, gallery, image)}/versions/{version}"


@dataclass(frozen=True)
class ParsedId:
    """A Microsoft.Compute id: ``kind`` is 'image', 'gallery', 'gallery image' or 'version'."""

    kind: str
    subscription: str
    group: str
    names: tuple[str, ...]


def parse(resource_id: str, *, target: str | None = None) -> ParsedId:
    """Parse a managed image, gallery, gallery image or gallery image version id."""
    parts = resource_id.strip().strip("/").split("/")
    low = [p.lower() for p in parts]
    ok = (len(parts) >= 8 and low[0] == "subscriptions" and low[2] == "resourcegroups" and low[4] == "providers"
          and low[5] == NS.lower())
    if ok:
        sub, group, rest, lrest = parts[1], parts[3], parts[6:], low[6:]
        if len(rest) == 2 and lrest[0] == "images":
            return ParsedId("image", sub, group, (rest[1],))
        if lrest[:1] == ["galleries"]:
            shapes = {2: "gallery", 4: "gallery image", 6: "version"}
            kind = shapes.get(len(rest))
            if kind and (len(rest) < 4 or lrest[2] == "images") and (len(rest) < 6 or lrest[4] == "versions"):
                return ParsedId(kind, sub, group, tuple(rest[1::2]))
    raise InvalidParameter(f"'{resource_id}' is not a Microsoft.Compute image, gallery, gallery image or gallery "
                           "image version id.", code="InvalidResourceId", target=target)
