"""``vmforge image``: the local image catalog, worked on directly in a data dir (the server may be running:
the store's lock and SQLite's WAL make that safe)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from vmforge.errors import ArmError

app = typer.Typer(no_args_is_help=True, help="Platform images, managed images and exports in the local store.")

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Data directory (default: $VMFORGE_HOME, else "
                                                 "the XDG data dir).", show_default=False)]


def _artifacts(data_dir: Path | None, catalog: Path | None = None):  # noqa: ANN202
    from vmforge.artifacts import Artifacts
    from vmforge.settings import Settings, default_data_dir
    from vmforge.store.db import Database

    dd = (data_dir or default_data_dir()).expanduser().resolve()
    settings = Settings(data_dir=dd)
    settings.ensure_dirs()
    db = Database(settings.db_url)
    db.migrate()
    return Artifacts(db, dd, list(settings.import_roots) or None, catalog_file=catalog)


def _fail(e: ArmError) -> None:
    typer.echo(f"error: {e.code}: {e.message}", err=True)
    raise typer.Exit(1)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="qcow2, raw, VHD or VHDX (detected by "
                                         "content).")],
    platform: Annotated[str, typer.Option(help="Marketplace URN publisher:offer:sku:version to register it as.")],
    os_type: Annotated[str, typer.Option(help="Linux or Windows.")] = "Linux",
    hyper_v_generation: Annotated[str, typer.Option(help="V1 (BIOS boot) or V2 (UEFI boot).")] = "V1",
    data_dir: DataDir = None,
) -> None:
    """Register a local disk image as a platform image.

    Example: vmforge image import debian-12.qcow2 --platform Debian:debian-12:12:0.20240101.1
    """
    from vmforge.artifacts.platform import Urn

    arts = _artifacts(data_dir)
    try:
        row = arts.platform.register(Urn.parse(platform), file.resolve(), os_type=os_type,
                                     hyper_v_generation=hyper_v_generation)
    except ArmError as e:
        _fail(e)
    typer.echo(f"{row.publisher}:{row.offer}:{row.sku}:{row.version}  sha256:{row.blob_digest}")


@app.command("pull")
def pull(
    urn: Annotated[str, typer.Argument(help="publisher:offer:sku:version (or :latest) listed in the catalog file.")],
    catalog: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSON: {URN: {url, sha256, osType?, "
                                          "hyperVGeneration?}}.")],
    data_dir: DataDir = None,
) -> None:
    """Download (once, verified against its sha256) and register a platform image named in a catalog file."""
    from vmforge.artifacts.platform import Urn

    try:
        row = _artifacts(data_dir, catalog).platform.resolve(Urn.parse(urn))
    except ArmError as e:
        _fail(e)
    typer.echo(f"{row.publisher}:{row.offer}:{row.sku}:{row.version}  sha256:{row.blob_digest}")


@app.command("list")
def list_(data_dir: DataDir = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the platform images and managed images of the data dir."""
    arts = _artifacts(data_dir)
    rows = [{"kind": "platform", "name": f"{r.publisher}:{r.offer}:{r.sku}:{r.version}", "osType": r.os_type,
             "sha256": r.blob_digest} for r in arts.platform.list_all()]
    from sqlalchemy import select

    from vmforge.store.artifact_models import ManagedImage

    with arts.db.session() as s:
        for m in s.scalars(select(ManagedImage).order_by(ManagedImage.id)):
            rows.append({"kind": "image", "name": f"/subscriptions/{m.subscription_id}/resourceGroups/"
                         f"{m.resource_group}/providers/Microsoft.Compute/images/{m.name}", "osType": m.os_type,
                         "sha256": m.blob_digest})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['kind']:9} {r['osType']:8} {r['sha256'][:12]}  {r['name']}")


@app.command("export")
def export(
    image: Annotated[str, typer.Argument(help="A managed image or gallery image version id, a platform URN, or a "
                                         "local image file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Destination file.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="vhd (Azure fixed VHD), qcow2 or raw.")] = "vhd",
    data_dir: DataDir = None,
) -> None:
    """Write an image as a fixed VHD (1 MiB aligned), qcow2 or raw."""
    from vmforge.artifacts.platform import Urn

    arts = _artifacts(data_dir)
    try:
        if image.count(":") == 3 and not Path(image).exists():
            image = str(arts.blobs.path(arts.platform.resolve(Urn.parse(image)).blob_digest))
        out = arts.export(image if image.startswith("/subscriptions/") else Path(image), fmt, output)
    except ArmError as e:
        _fail(e)
    typer.echo(str(out))
