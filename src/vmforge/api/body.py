"""Reads a JSON request body with ARM's limits: content type, size (413), well-formedness, nesting depth and
string length (400 ``InvalidRequestContent`` naming the JSON path). Nothing is stored when a limit is hit."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from vmforge.errors import InvalidRequestContent, PayloadTooLarge, UnsupportedMediaType

_JSON_TYPES = ("application/json", "text/json")


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequestContent("The request content was null or empty; a JSON body is required.")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (ctype in _JSON_TYPES or (ctype.startswith("application/") and ctype.endswith("+json"))):
        raise UnsupportedMediaType(
            f"The content type '{ctype or '(none)'}' is not supported; send 'application/json'."
        )
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise InvalidRequestContent(f"The request content is not valid JSON: {e}") from None
    settings = getattr(request.app.state, "settings", None)
    check_shape(value, getattr(settings, "max_json_depth", MAX_DEPTH), getattr(settings, "max_string_bytes", MAX_STRING))
    return value


MAX_DEPTH = 64
MAX_STRING = 64 * 1024


def _path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def check_shape(value: Any, max_depth: int = MAX_DEPTH, max_string: int = MAX_STRING) -> None:
    """Refuse JSON nested deeper than ``max_depth`` or holding a string (or key) longer than ``max_string``
    UTF-8 bytes (iterative: no recursion on hostile input)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > max_depth:
            raise InvalidRequestContent(f"The request content is nested deeper than {max_depth} levels.",
                                        target=_path(path[:max_depth]))
        if isinstance(node, str):
            if len(node) * 4 > max_string and len(node.encode()) > max_string:
                raise InvalidRequestContent(f"A string is longer than the limit of {max_string} bytes.",
                                            target=_path(path))
        elif isinstance(node, dict):
            for k, v in node.items():
                if len(k.encode()) > max_string:
                    raise InvalidRequestContent(f"A property name is longer than the limit of {max_string} bytes.",
                                                target=_path(path))
                stack.append((v, path + (k,)))
        elif isinstance(node, list):
            stack.extend((v, path + (i,)) for i, v in enumerate(node))
