"""The ASGI application."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vmforge import __version__
from vmforge.api import errors
from vmforge.api.paths import CanonicalPathMiddleware
from vmforge.api.routes import compute, imagetemplates, operations
from vmforge.auth import Authenticator, ensure_token
from vmforge.service.container import Services
from vmforge.service.runs import UnavailableEngine
from vmforge.settings import Settings
from vmforge.store.db import Database

log = logging.getLogger("vmforge")


class RequestIdMiddleware:
    """Adds ARM's ``x-ms-request-id`` and ``x-ms-correlation-request-id`` to every response (plain ASGI: no
    per-request task, unlike ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4()).encode()
        corr = rid
        for k, v in scope.get("headers", ()):
            if k == b"x-ms-correlation-request-id":
                corr = v
                break

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers += [(b"x-ms-request-id", rid), (b"x-ms-correlation-request-id", corr)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_ids)


def build_services(settings: Settings) -> Services:
    settings.ensure_dirs()
    db = Database(settings.db_url)
    db.migrate()
    engine = UnavailableEngine()
    services = Services(settings, db, engine)
    engine.runs = services.runs
    return services


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        app.state.services = services
        app.state.authenticator = Authenticator(ensure_token(settings.data_dir))
        recovered = services.recover()
        if recovered:
            log.info("finished %d operations interrupted by the last stop", recovered)
        try:
            yield
        finally:
            services.db.dispose()

    app = FastAPI(title="vmforge", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    errors.install(app)
    app.include_router(imagetemplates.router)
    app.include_router(operations.router)
    app.include_router(compute.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Liveness, without authentication; also the 'bare endpoint' of the benchmarks."""
        return JSONResponse({"status": "ok", "version": __version__})

    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(CanonicalPathMiddleware)
    return app
