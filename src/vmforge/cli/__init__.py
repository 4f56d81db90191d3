"""The ``vmforge`` command."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vmforge.settings import Settings, default_data_dir

app = typer.Typer(no_args_is_help=True, add_completion=True, help="vmforge: build VM images with the Azure Image "
                  "Builder API, on your own machines.")

DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Data directory (default: $VMFORGE_HOME, "
                                                    "else the XDG data dir).", show_default=False)]

SERVER_FILE = "server.json"


def _data_dir(value: Path | None) -> Path:
    return (value or default_data_dir()).expanduser().resolve()


def _server(config):  # noqa: ANN001, ANN202
    """uvicorn, except that a stop drops idle keep-alive connections at once. Closing a TLS connection waits
    for the peer's close_notify, which a client's idle connection pool never sends: every pooled connection
    would hold the stop for the whole graceful timeout. Requests in flight still get that time to finish."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:  # noqa: ANN001
            for server in self.servers:
                server.close()  # no new connection from here on
            for connection in list(self.server_state.connections):
                cycle = getattr(connection, "cycle", None)
                transport = getattr(connection, "transport", None)
                if transport is not None and (cycle is None or getattr(cycle, "response_complete", False)):
                    transport.abort()
            await super().shutdown(sockets)

    return Server(config)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8443,
    data_dir: DataDirOpt = None,
    public_url: Annotated[Optional[str], typer.Option(help="Base URL clients reach this server at; used in "
                                                      "Azure-AsyncOperation, Location and nextLink URLs.")] = None,
    database_url: Annotated[Optional[str], typer.Option(help="SQLAlchemy URL (default: SQLite in the data dir; "
                                                        "postgresql+psycopg://… for scale-out).")] = None,
    insecure_http: Annotated[bool, typer.Option("--insecure-http", help="Serve plain HTTP instead of HTTPS.")] = False,
    allow_template_updates: Annotated[bool, typer.Option(
        "--allow-template-updates",
        help="Accept a PUT that changes an existing template (Azure refuses it with 409; off by default).")] = False,
    page_size: Annotated[int, typer.Option(help="Items per page of list operations.")] = 1000,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "info",
    import_root: Annotated[Optional[list[Path]], typer.Option(
        "--import-root", help="A host folder that file:// blobUris may read from (repeatable; default: "
        "<data dir>/imports).")] = None,
    allow_fetch_from: Annotated[Optional[list[str]], typer.Option(
        "--allow-fetch-from", help="A CIDR that downloads (scriptUri, sourceUri, image URLs) may reach although "
        "it is loopback, link-local or private (repeatable; default: none).")] = None,
    build_deny: Annotated[Optional[list[str]], typer.Option(
        "--build-deny", help="A CIDR build VMs may not reach, besides loopback, link-local, this host's addresses "
        "and (unless allowed) RFC 1918, CGNAT and ULA (repeatable; env VMFORGE_BUILD_DENY).")] = None,
    build_allow: Annotated[Optional[list[str]], typer.Option(
        "--build-allow", help="A CIDR build VMs may reach although a deny list covers it, e.g. a private package "
        "mirror; never opens loopback, link-local or this host's addresses (repeatable).")] = None,
    rate_limit_reads: Annotated[int, typer.Option(help="Reads per hour per principal and subscription "
                                                  "(ARM: 12000; 0: no limit).")] = 1_000_000,
    rate_limit_writes: Annotated[int, typer.Option(help="Writes per hour per principal and subscription "
                                                   "(ARM: 1200; 0: no limit).")] = 100_000,
    external_issuer: Annotated[Optional[str], typer.Option(
        help="Also accept tokens of this issuer, e.g. https://login.microsoftonline.com/TENANT/v2.0.")] = None,
    external_jwks_url: Annotated[Optional[str], typer.Option(
        help="The external issuer's JWKS, e.g. https://login.microsoftonline.com/TENANT/discovery/v2.0/keys.")
    ] = None,
    external_audience: Annotated[Optional[list[str]], typer.Option(
        "--external-audience", help="An audience accepted from the external issuer (repeatable; default: "
        "both ARM audiences).")] = None,
    token_lifetime: Annotated[int, typer.Option(help="Lifetime of issued access tokens, seconds.")] = 3600,
) -> None:
    """Run the vmforge server (ARM API over HTTPS).

    Example: vmforge serve --port 8443 --data-dir ~/vmforge
    """
    import uvicorn

    from vmforge.api.app import create_app
    from vmforge.identity import admin_credentials_path
    from vmforge.tls import ensure_certificate

    dd = _data_dir(data_dir)
    from pydantic import ValidationError

    try:
        settings = Settings(data_dir=dd, host=host, port=port, public_url=public_url, database_url=database_url,
                            insecure_http=insecure_http, allow_template_updates=allow_template_updates,
                            page_size=page_size, import_roots=[p.expanduser().resolve() for p in import_root or []],
                            allow_fetch_from=list(allow_fetch_from or []), rate_limit_reads=rate_limit_reads,
                            rate_limit_writes=rate_limit_writes, external_issuer=external_issuer,
                            external_jwks_url=external_jwks_url, external_audience=list(external_audience or []),
                            token_lifetime=token_lifetime,
                            **({"build_deny": build_deny} if build_deny else {}),
                            **({"build_allow": build_allow} if build_allow else {}))
    except ValidationError as e:  # a bad --build-deny/--build-allow CIDR, say: one line, no traceback
        problems = "; ".join(err["msg"] for err in e.errors())
        typer.echo(f"error: {problems}", err=True)
        raise typer.Exit(2) from None
    settings.ensure_dirs()
    ssl: dict = {}
    cert = None
    if not insecure_http:
        cert, key = ensure_certificate(dd, host)
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    info = {"url": settings.base_url, "ca_bundle": str(cert) if cert else None,
            "credentials_file": str(admin_credentials_path(dd)), "tenant": settings.tenant_id, "pid": os.getpid()}
    tmp = dd / (SERVER_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, dd / SERVER_FILE)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # per-packet chatter; the run log has what matters
    typer.echo(f"vmforge listening on {settings.base_url}", err=True)
    typer.echo(f"  data dir:  {dd}", err=True)
    if cert:
        typer.echo(f"  TLS cert:  {cert}   (export REQUESTS_CA_BUNDLE={cert})", err=True)
    typer.echo(f"  admin:     {admin_credentials_path(dd)}   (vmforge token --data-dir {dd})", err=True)
    from vmforge.machine import accel

    typer.echo(f"  builds:    accelerator {accel.for_store(dd / 'accel.json').describe()}", err=True)
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level.lower(),
                            access_log=log_level.lower() == "debug", timeout_graceful_shutdown=10, **ssl)
    from vmforge.identity.logredact import install_redaction

    install_redaction()  # after uvicorn configured its loggers: no token or secret reaches the log
    server = _server(config)
    server.run()
    if not server.started:
        raise typer.Exit(1)


@app.command()
def token(data_dir: DataDirOpt = None) -> None:
    """Print an access token (a JWT, valid one hour) of the bootstrap admin that the local server of the data
    dir accepts — as `az account get-access-token` does for Azure.

    Example: curl -H "Authorization: Bearer $(vmforge token)" https://127.0.0.1:8443/...
    """
    from vmforge.identity import local_token

    try:
        typer.echo(local_token(_data_dir(data_dir)))
    except FileNotFoundError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


from vmforge.cli import image as _image  # noqa: E402
from vmforge.cli import principal as _principal  # noqa: E402

_principal.register(app)

app.add_typer(_image.app, name="image")

# Client commands (REST): vmforge.cli.{validate,templates,build,artifacts}.
from vmforge.cli import artifacts as _artifacts, build as _build, templates as _templates  # noqa: E402
from vmforge.cli.validate import validate as _validate  # noqa: E402

app.command("validate")(_validate)
app.add_typer(_templates.app, name="template")
_templates.register(app)
_build.register(app)
_artifacts.register_image(_image.app)
app.add_typer(_artifacts.gallery, name="gallery")

from vmforge.cli import lineage as _lineage  # noqa: E402  (lineage, revoke, unrevoke)

_lineage.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
