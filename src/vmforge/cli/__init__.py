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
) -> None:
    """Run the vmforge server (ARM API over HTTPS).

    Example: vmforge serve --port 8443 --data-dir ~/vmforge
    """
    import uvicorn

    from vmforge.api.app import create_app
    from vmforge.auth import ensure_token, token_path
    from vmforge.tls import ensure_certificate

    dd = _data_dir(data_dir)
    settings = Settings(data_dir=dd, host=host, port=port, public_url=public_url, database_url=database_url,
                        insecure_http=insecure_http, allow_template_updates=allow_template_updates,
                        page_size=page_size, import_roots=[p.expanduser().resolve() for p in import_root or []])
    settings.ensure_dirs()
    ensure_token(dd)
    ssl: dict = {}
    cert = None
    if not insecure_http:
        cert, key = ensure_certificate(dd, host)
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    info = {"url": settings.base_url, "ca_bundle": str(cert) if cert else None,
            "token_file": str(token_path(dd)), "pid": os.getpid()}
    tmp = dd / (SERVER_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, dd / SERVER_FILE)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    typer.echo(f"vmforge listening on {settings.base_url}", err=True)
    typer.echo(f"  data dir:  {dd}", err=True)
    if cert:
        typer.echo(f"  TLS cert:  {cert}   (export REQUESTS_CA_BUNDLE={cert})", err=True)
    typer.echo(f"  token:     {token_path(dd)}   (vmforge token --data-dir {dd})", err=True)
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level.lower(),
                            access_log=log_level.lower() == "debug", timeout_graceful_shutdown=10, **ssl)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise typer.Exit(1)


@app.command()
def token(data_dir: DataDirOpt = None) -> None:
    """Print a bearer token that the local server of the data dir accepts.

    Example: curl -H "Authorization: Bearer $(vmforge token)" https://127.0.0.1:8443/...
    """
    from vmforge.auth import read_token

    try:
        typer.echo(read_token(_data_dir(data_dir)))
    except FileNotFoundError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


from vmforge.cli import image as _image  # noqa: E402

app.add_typer(_image.app, name="image")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
