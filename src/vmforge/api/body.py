"""Reads a JSON request body with ARM's limits: content type, size, well-formedness."""

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
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise InvalidRequestContent(f"The request content is not valid JSON: {e}") from None
