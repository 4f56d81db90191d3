"""The ASGI application."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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

    @app.middleware("http")
    async def request_ids(request: Request, call_next):  # noqa: ANN001, ANN202
        rid = str(uuid.uuid4())
        response = await call_next(request)
        response.headers["x-ms-request-id"] = rid
        response.headers["x-ms-correlation-request-id"] = request.headers.get("x-ms-correlation-request-id", rid)
        return response

    app.add_middleware(CanonicalPathMiddleware)
    return app
