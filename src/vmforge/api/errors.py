"""Renders every error as an ARM CloudError: ``{"error": {"code", "message", "target", "details"}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vmforge.errors import ArmError, ErrorDetail
from vmforge.events import redact

log = logging.getLogger("vmforge.api")


def cloud_error(err: ArmError) -> JSONResponse:
    """The CloudError response; its messages are redacted (an error quoting a URL with its SAS, or a
    connection string, must not hand the secret to the client)."""
    headers = dict(err.headers)
    if err.status == 401:
        headers.setdefault(
            "WWW-Authenticate", 'Bearer realm="vmforge", error="invalid_token", error_description="' +
            redact(err.message).replace('"', "'") + '"'
        )
    body = err.to_dict()
    body["error"]["message"] = redact(body["error"]["message"])
    for d in body["error"].get("details") or []:
        d["message"] = redact(d.get("message") or "")
    return JSONResponse(body, status_code=err.status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ArmError)
    async def _arm(_req: Request, exc: ArmError) -> JSONResponse:
        return cloud_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err = ArmError(f"No route matches '{req.method} {req.url.path}'.", code="NotFound", status=404)
        elif exc.status_code == 405:
            err = ArmError(f"The method '{req.method}' is not allowed on '{req.url.path}'.",
                           code="MethodNotAllowed", status=405)
        else:
            err = ArmError(str(exc.detail), code="BadRequest", status=exc.status_code)
        return cloud_error(err)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            ErrorDetail("InvalidParameter", e.get("msg", "invalid"), ".".join(str(p) for p in e.get("loc", ())))
            for e in exc.errors()
        ]
        return cloud_error(ArmError("The request is invalid.", code="InvalidRequestContent", details=details))

    @app.exception_handler(Exception)
    async def _unexpected(req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", req.method, req.url.path)
        return cloud_error(ArmError(
            "The server had an unexpected error; the request was not applied. See the server log.",
            code="InternalServerError", status=500,
        ))
