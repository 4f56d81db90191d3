"""The ASGI application."""

from __future__ import annotations

import logging
from pathlib import Path
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vmforge import __version__
from vmforge.api import errors
from vmforge.api.paths import CanonicalPathMiddleware
from vmforge.api.routes import authorization, compute, graph, identity, imagetemplates, meta, msi, operations, runs
from vmforge.api.routes import resources
from vmforge.api.routes import lineage as lineage_routes
from vmforge.auth import Authenticator
from vmforge.identity import bootstrap as identity_bootstrap
from vmforge.identity.logredact import install_redaction
from vmforge.service.container import Services
from vmforge.artifacts import Artifacts
from vmforge.runner.embedded import EmbeddedWorker
from vmforge.runner.engine import CeleryEngine
from vmforge.runner.triggers import TriggerWatcher
from vmforge.settings import Settings
from vmforge.store.db import Database

log = logging.getLogger("vmforge")


class ResponseHeadersMiddleware:
    """Adds ARM's ``x-ms-request-id`` and ``x-ms-correlation-request-id`` to every response, and gives each
    request a list, ``request.state.extra_headers``, whose ``(name, value)`` byte pairs are added to its response
    — how dependencies (the rate limiter) set headers on responses that routes build themselves. Plain ASGI: no
    per-request task, unlike ``BaseHTTPMiddleware``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4()).encode()
        corr = next((v for k, v in scope.get("headers", ()) if k == b"x-ms-correlation-request-id"), rid)
        extra: list[tuple[bytes, bytes]] = [(b"x-ms-request-id", rid), (b"x-ms-correlation-request-id", corr)]
        scope = dict(scope)
        scope["state"] = {**(scope.get("state") or {}), "extra_headers": extra}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", ())) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_services(settings: Settings) -> Services:
    """The services of one server process: store, artifacts, build engine (not yet started)."""
    settings.ensure_dirs()
    db = Database(settings.db_url)
    db.migrate()
    engine = CeleryEngine(settings)
    services = Services(settings, db, engine)
    roots = [Path(p) for p in settings.import_roots or []]
    services.artifacts = Artifacts(db, settings.data_dir, roots or None)
    engine.attach(services, services.artifacts)
    return services


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        app.state.services = services
        ident = identity_bootstrap(settings, services.db)
        app.state.identity = ident
        app.state.authenticator = Authenticator(ident.verifier, ident.authorizer)
        install_redaction()
        worker = EmbeddedWorker(concurrency=settings.build_concurrency)
        worker.start()
        recovered = services.recover()
        if recovered:
            log.info("finished %d operations interrupted by the last stop", recovered)
        triggers = TriggerWatcher(services, settings.trigger_interval)
        triggers.start()
        try:
            yield
        finally:
            triggers.stop()
            stopped = services.engine.shutdown()  # no build VM outlives the server
            if stopped:
                log.warning("stopped the builds of runs %s: the server is stopping", stopped)
            worker.stop()
            services.db.dispose()

    app = FastAPI(title="vmforge", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    errors.install(app)
    app.include_router(imagetemplates.router)
    app.include_router(operations.router)
    app.include_router(compute.router)
    app.include_router(meta.router)
    app.include_router(resources.router)
    app.include_router(identity.router)
    app.include_router(runs.router)
    app.include_router(msi.router)
    app.include_router(graph.router)
    app.include_router(lineage_routes.router)  # vmforge's {artifact}/providers/Vmforge/... extension
    app.include_router(authorization.router)  # last: its routes match any scope prefix

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Liveness, without authentication; also the 'bare endpoint' of the benchmarks."""
        return JSONResponse({"status": "ok", "version": __version__})

    app.add_middleware(ResponseHeadersMiddleware)
    app.add_middleware(CanonicalPathMiddleware)
    return app
