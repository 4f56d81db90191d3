"""Error details of the wire layer: the detail codes, JSON paths, and pydantic errors turned into both.

A *path* is a tuple of property names and list indexes; ``fmt_path`` renders it the way ARM writes targets:
``("properties", "customize", 1, "inline")`` → ``properties.customize[1].inline``; a key that is not a plain
identifier (a tag name, an identity resource id) is written in brackets: ``tags['new-tag']``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from vmforge.errors import ErrorDetail

# The detail codes (the ``code`` of each entry of a ValidationFailed error's ``details``).
MISSING = "MissingRequiredProperty"  # a required property is absent or null (or "" where a value is needed)
UNKNOWN = "UnknownProperty"  # a property the request's api-version does not define (strict versions only)
ENUM = "InvalidEnumValue"  # a value outside an enum, or an unknown discriminator (type/kind/scheme) value
PATTERN = "InvalidPattern"  # a string that does not match its pattern (runOutputName, sha256Checksum, ...)
RANGE = "OutOfRange"  # a number outside its minimum/maximum
TYPE = "InvalidType"  # a value of the wrong JSON type (string/integer/boolean/array/object)
INVALID = "InvalidParameter"  # a rule across properties is broken (exactly one of, only with, unique, ...)

# What the walk puts in place of a discriminator value that is not a string (it reports that error itself).
NOT_A_STRING = "\x00not-a-string"

# A pathological body can carry a great many errors; past this many, one summary detail stands for the rest.
MAX_DETAILS = 100

# A property name longer than this is cut in targets (a JSON key can be as long as the body).
MAX_KEY = 512

Path = tuple[str | int, ...]

_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_TYPE_WORDS = {
    "string": "a string",
    "int": "an integer",
    "bool": "a boolean",
    "list": "an array",
    "dict": "an object",
    "model": "an object",
    "float": "a number",
}


def fmt_path(path: Sequence[str | int]) -> str | None:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif len(part) <= MAX_KEY and _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            part = part if len(part) <= MAX_KEY else part[: MAX_KEY - 3] + "..."
            out += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out or None


def shown(value: Any, limit: int = 80) -> str:
    """A short, safe rendering of a client's value for an error message (never the repr of a container, which
    could be huge or nested beyond the recursion limit)."""
    if isinstance(value, str):
        text = "'" + value + "'"
    elif isinstance(value, bool) or value is None:
        text = "true" if value is True else "false" if value is False else "null"
    elif isinstance(value, int):
        text = str(value) if -(10**18) < value < 10**18 else "a very large integer"
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = {dict: "an object", list: "an array"}.get(type(value), "a value")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _case_hint(value: Any, expected: Any) -> str:
    """A hint when a value differs from an allowed one only in case (strict versions are case-sensitive)."""
    if isinstance(value, str) and isinstance(expected, str):
        for allowed in re.findall(r"'([^']*)'", expected):
            if allowed != value and allowed.casefold() == value.casefold():
                return f" Values are case-sensitive: did you mean '{allowed}'?"
    return ""


def detail(code: str, message: str, path: Sequence[str | int]) -> ErrorDetail:
    return ErrorDetail(code, message, fmt_path(path))


def _strip_tags(loc: Sequence[str | int], data: Any) -> list[str | int]:
    """The JSON path of a pydantic error location: walks the input along ``loc`` and leaves out the union tags
    pydantic inserts for discriminated unions (``('customize', 1, 'Shell', 'inline')`` → ``customize[1].inline``)."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and isinstance(part, str) and part not in cur:
            if part in (cur.get("type"), cur.get("kind"), cur.get("scheme")):
                continue  # a discriminator tag, not a property
            out.append(part)
            cur = None
            continue
        out.append(part)
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
        else:
            cur = None
    return out


def _name(path: Sequence[str | int]) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return part if len(part) <= 80 else part[:77] + "..."
    return "value"


def from_pydantic(exc: ValidationError, data: Any, prefix: Path = ()) -> list[ErrorDetail]:
    """Every pydantic error as an ErrorDetail with a JSON path target and one of the codes above."""
    out: list[ErrorDetail] = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        ctx = err.get("ctx") or {}
        path = [*prefix, *_strip_tags(err["loc"], data)]
        name = _name(path)
        value = err.get("input")
        if kind == "missing":
            out.append(detail(MISSING, f"The property '{name}' is required.", path))
        elif kind == "extra_forbidden":
            out.append(detail(UNKNOWN, f"Could not find member '{name}'.", path))
        elif kind == "literal_error":
            out.append(detail(ENUM, f"The value {shown(value)} is not valid for '{name}'. Allowed values: "
                                    f"{ctx.get('expected')}.{_case_hint(value, ctx.get('expected'))}", path))
        elif kind == "union_tag_invalid" and ctx.get("tag") == NOT_A_STRING:
            continue
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            disc = str(ctx.get("discriminator", "type")).strip("'\"")
            path.append(disc)
            if kind == "union_tag_not_found":
                out.append(detail(MISSING, f"The property '{disc}' is required.", path))
            else:
                out.append(detail(ENUM, f"The value {shown(ctx.get('tag'))} is not a valid '{disc}'. Allowed values: "
                                        f"{ctx.get('expected_tags')}."
                                        f"{_case_hint(ctx.get('tag'), ctx.get('expected_tags'))}", path))
        elif kind == "string_pattern_mismatch":
            out.append(detail(PATTERN, f"The value {shown(value)} of '{name}' does not match the pattern "
                                       f"'{ctx.get('pattern')}'.", path))
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            words = {"greater_than_equal": ("greater than or equal to", "ge"), "greater_than": ("greater than", "gt"),
                     "less_than_equal": ("less than or equal to", "le"), "less_than": ("less than", "lt")}[kind]
            out.append(detail(RANGE, f"The value {shown(value)} of '{name}' is out of range: it must be {words[0]} "
                                     f"{ctx.get(words[1])}.", path))
        elif kind == "string_too_short":
            out.append(detail(INVALID, f"The value of '{name}' must not be empty.", path))
        elif kind.endswith("_type") or kind in ("int_from_float", "model_attributes_type"):
            word = _TYPE_WORDS.get(kind.split("_", 1)[0], "of another type")
            out.append(detail(TYPE, f"The value of '{name}' must be {word}.", path))
        else:
            out.append(detail(INVALID, f"The value of '{name}' is not valid: {err.get('msg')}.", path))
    return out


def merge(*lists: Iterable[ErrorDetail]) -> list[ErrorDetail]:
    """All details in order, each (code, target) once, capped at MAX_DETAILS."""
    seen: set[tuple[str, str | None]] = set()
    out: list[ErrorDetail] = []
    for items in lists:
        for d in items:
            key = (d.code, d.target)
            if key not in seen:
                seen.add(key)
                out.append(d)
    if len(out) > MAX_DETAILS:
        rest = len(out) - (MAX_DETAILS - 1)
        out = out[: MAX_DETAILS - 1]
        out.append(ErrorDetail(INVALID, f"{rest} more errors were found and are not listed.", None))
    return out
