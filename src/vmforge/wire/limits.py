"""Size limits on image template bodies, reported with the schema walk's errors: at most ``MAX_STEPS`` customizers, validators and distributors each, and ARM's tag limits (50 tags,
names of at most 512 characters, values of at most 256). Every violation is an ``OutOfRange`` detail."""

from __future__ import annotations

from typing import Any

from vmforge.errors import ErrorDetail
from vmforge.wire.errors import RANGE

MAX_STEPS = 100
MAX_TAGS = 50
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256

_LISTS = (("customize",), ("distribute",), ("validate", "inVMValidations"))


def _get(obj: Any, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = next((v for kk, v in obj.items() if isinstance(kk, str) and kk.lower() == k.lower()), None)
    return obj


def limit_errors(body: Any) -> list[ErrorDetail]:
    """The limit violations of a template PUT or PATCH body (empty when within limits)."""
    if not isinstance(body, dict):
        return []
    errors: list[ErrorDetail] = []
    props = _get(body, ("properties",))
    for keys in _LISTS:
        items = _get(props, keys)
        if isinstance(items, list) and len(items) > MAX_STEPS:
            errors.append(ErrorDetail(RANGE, f"At most {MAX_STEPS} entries are allowed; {len(items)} were given.",
                                      "properties." + ".".join(keys)))
    errors += _tag_errors(_get(body, ("tags",)), "tags", MAX_TAGS)
    # managedResourceTags become the tags of what the service creates: the staging group also carries AIB's own
    # three (vmforge.service.staging), so they leave room for those, and their names must be names ARM allows.
    errors += _tag_errors(_get(props, ("managedResourceTags",)), "properties.managedResourceTags",
                          MAX_TAGS - MANAGED_TAGS_RESERVED, names=True)
    return errors[:20]


MANAGED_TAGS_RESERVED = 3
_TAG_NAME_FORBIDDEN = set("<>%&\\?/")


def _tag_errors(tags: Any, path: str, most: int, names: bool = False) -> list[ErrorDetail]:
    if not isinstance(tags, dict):
        return []
    errors: list[ErrorDetail] = []
    if len(tags) > most:
        errors.append(ErrorDetail(RANGE, f"At most {most} tags are allowed; {len(tags)} were given.", path))
    for name, value in tags.items():
        if not isinstance(name, str):
            continue
        if len(name) > MAX_TAG_NAME:
            errors.append(ErrorDetail(RANGE, f"A tag name is longer than {MAX_TAG_NAME} characters.", path))
        elif names and (not name or _TAG_NAME_FORBIDDEN & set(name)):
            errors.append(ErrorDetail(RANGE, f"The tag name '{name[:64]}' is invalid: use 1-512 characters, none of "
                                      "'<>%&\\?/'.", f"{path}['{name[:64]}']"))
        if isinstance(value, str) and len(value) > MAX_TAG_VALUE:
            errors.append(ErrorDetail(RANGE, f"The value of tag '{name[:64]}' is longer than {MAX_TAG_VALUE} "
                                      "characters.", f"{path}['{name[:64]}']"))
    return errors
