"""The artifact store's Microsoft.Compute API from the CLI: managed images and galleries, over REST.

``vmforge image`` is the local catalog sub-app (``vmforge.cli.image``: import/pull/list/export on a data dir);
its ``list`` stays local. The REST commands are added beside it under names it does not use:
``vmforge image show|delete NAME`` and ``vmforge image list-managed``. Galleries: ``vmforge gallery
list|show|delete``, ``vmforge gallery definition list|show|delete`` and ``vmforge gallery version
list|show|delete`` (as ``az sig``, ``az sig image-definition``, ``az sig image-version``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from vmforge.cli.client import COMPUTE_API, GALLERY_API, Client
from vmforge.cli.output import (
    GROUP_DEFAULT,
    SUB_DEFAULT,
    Column,
    DataDirOpt,
    Format,
    GroupOpt,
    OutputOpt,
    ServerOpt,
    SubOpt,
    closes_clients,
    connect,
    dig,
    emit,
    guarded,
)

IMAGE_COLUMNS: list[Column] = [
    ("Name", lambda r: r.get("name")),
    ("Location", lambda r: r.get("location")),
    ("OsType", lambda r: dig(r, "properties", "storageProfile", "osDisk", "osType")),
    ("Generation", lambda r: dig(r, "properties", "hyperVGeneration")),
    ("State", lambda r: dig(r, "properties", "provisioningState")),
]
GALLERY_COLUMNS: list[Column] = [
    ("Name", lambda r: r.get("name")),
    ("Location", lambda r: r.get("location")),
    ("State", lambda r: dig(r, "properties", "provisioningState")),
]
DEFINITION_COLUMNS: list[Column] = [
    ("Name", lambda r: r.get("name")),
    ("OsType", lambda r: dig(r, "properties", "osType")),
    ("Publisher", lambda r: dig(r, "properties", "identifier", "publisher")),
    ("Offer", lambda r: dig(r, "properties", "identifier", "offer")),
    ("Sku", lambda r: dig(r, "properties", "identifier", "sku")),
    ("State", lambda r: dig(r, "properties", "provisioningState")),
]
VERSION_COLUMNS: list[Column] = [
    ("Name", lambda r: r.get("name")),
    ("Location", lambda r: r.get("location")),
    ("Regions", lambda r: ", ".join(t.get("name", "") for t in dig(r, "properties", "publishingProfile",
                                                                   "targetRegions") or [])),
    ("State", lambda r: dig(r, "properties", "provisioningState")),
]

Name = Annotated[str, typer.Argument(show_default=False)]


def _delete(client: Client, path: str, what: str, api_version: str) -> None:
    r = client.request("DELETE", path, api_version=api_version)
    if r.status_code != 204:
        client.wait(r)
    typer.echo(f"{what}: deleted" if r.status_code != 204 else f"{what}: nothing to delete", err=True)


# ----------------------------------------------------------------------------------------------- managed images
def image_show(name: Name, output: OutputOpt = Format.json, server: ServerOpt = None, data_dir: DataDirOpt = None,
               subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """Show a managed image of the server (REST).

    Example: vmforge image show ubuntu-nginx-img -g images
    """
    c = connect(server, data_dir, subscription, group)
    emit(guarded(lambda: c.get_json(c.target.compute(f"images/{name}"), api_version=COMPUTE_API)), output,
         IMAGE_COLUMNS)


def image_delete(name: Name, server: ServerOpt = None, data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT,
                 group: GroupOpt = GROUP_DEFAULT) -> None:
    """Delete a managed image of the server (REST).

    Example: vmforge image delete ubuntu-nginx-img -g images
    """
    c = connect(server, data_dir, subscription, group)
    guarded(lambda: _delete(c, c.target.compute(f"images/{name}"), name, COMPUTE_API))


def image_list_managed(
    all_groups: Annotated[bool, typer.Option("--all", help="Every resource group of the subscription.")] = False,
    output: OutputOpt = Format.table, server: ServerOpt = None, data_dir: DataDirOpt = None,
    subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT,
) -> None:
    """List the managed images of the server (REST; `vmforge image list` lists the local data dir).

    Example: vmforge image list-managed --all -o json
    """
    c = connect(server, data_dir, subscription, group)
    path = f"/subscriptions/{subscription}/providers/Microsoft.Compute/images" if all_groups else c.target.compute(
        "images")
    emit(guarded(lambda: c.list_all(path, api_version=COMPUTE_API)), output, IMAGE_COLUMNS)


def register_image(image_app: typer.Typer) -> None:
    """Add the REST commands to the local ``vmforge image`` sub-app (its own commands are left as they are)."""
    image_app.command("show")(closes_clients(image_show))
    image_app.command("delete")(closes_clients(image_delete))
    image_app.command("list-managed")(closes_clients(image_list_managed))


# ----------------------------------------------------------------------------------------------- galleries
gallery = typer.Typer(no_args_is_help=True, help="Azure Compute Galleries on the server (REST).")
definition = typer.Typer(no_args_is_help=True, help="Gallery image definitions.")
version = typer.Typer(no_args_is_help=True, help="Gallery image versions.")
gallery.add_typer(definition, name="definition")
gallery.add_typer(version, name="version")


@gallery.command("list")
@closes_clients
def gallery_list(output: OutputOpt = Format.table, server: ServerOpt = None, data_dir: DataDirOpt = None,
                 subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """List the galleries of a resource group.

    Example: vmforge gallery list -g images
    """
    c = connect(server, data_dir, subscription, group)
    emit(guarded(lambda: c.list_all(c.target.compute("galleries"), api_version=GALLERY_API)), output, GALLERY_COLUMNS)


@gallery.command("show")
@closes_clients
def gallery_show(name: Name, output: OutputOpt = Format.json, server: ServerOpt = None, data_dir: DataDirOpt = None,
                 subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """Show a gallery.

    Example: vmforge gallery show mygallery -g images
    """
    c = connect(server, data_dir, subscription, group)
    emit(guarded(lambda: c.get_json(c.target.compute(f"galleries/{name}"), api_version=GALLERY_API)), output,
         GALLERY_COLUMNS)


@gallery.command("delete")
@closes_clients
def gallery_delete(name: Name, server: ServerOpt = None, data_dir: DataDirOpt = None,
                   subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """Delete a gallery (it must hold no image definitions).

    Example: vmforge gallery delete mygallery -g images
    """
    c = connect(server, data_dir, subscription, group)
    guarded(lambda: _delete(c, c.target.compute(f"galleries/{name}"), name, GALLERY_API))


@definition.command("list")
@closes_clients
def definition_list(gallery_name: Name, output: OutputOpt = Format.table, server: ServerOpt = None,
                    data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT,
                    group: GroupOpt = GROUP_DEFAULT) -> None:
    """List the image definitions of a gallery.

    Example: vmforge gallery definition list mygallery
    """
    c = connect(server, data_dir, subscription, group)
    emit(guarded(lambda: c.list_all(c.target.compute(f"galleries/{gallery_name}/images"), api_version=GALLERY_API)),
         output, DEFINITION_COLUMNS)


@definition.command("show")
@closes_clients
def definition_show(gallery_name: Name, name: Name, output: OutputOpt = Format.json, server: ServerOpt = None,
                    data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT,
                    group: GroupOpt = GROUP_DEFAULT) -> None:
    """Show an image definition.

    Example: vmforge gallery definition show mygallery ubuntu-nginx
    """
    c = connect(server, data_dir, subscription, group)
    emit(guarded(lambda: c.get_json(c.target.compute(f"galleries/{gallery_name}/images/{name}"),
                                    api_version=GALLERY_API)), output, DEFINITION_COLUMNS)


@definition.command("delete")
@closes_clients
def definition_delete(gallery_name: Name, name: Name, server: ServerOpt = None, data_dir: DataDirOpt = None,
                      subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """Delete an image definition (it must hold no versions).

    Example: vmforge gallery definition delete mygallery ubuntu-nginx
    """
    c = connect(server, data_dir, subscription, group)
    guarded(lambda: _delete(c, c.target.compute(f"galleries/{gallery_name}/images/{name}"), name, GALLERY_API))


@version.command("list")
@closes_clients
def version_list(gallery_name: Name, definition_name: Name, output: OutputOpt = Format.table,
                 server: ServerOpt = None, data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT,
                 group: GroupOpt = GROUP_DEFAULT) -> None:
    """List the versions of an image definition.

    Example: vmforge gallery version list mygallery ubuntu-nginx
    """
    c = connect(server, data_dir, subscription, group)
    path = c.target.compute(f"galleries/{gallery_name}/images/{definition_name}/versions")
    emit(guarded(lambda: c.list_all(path, api_version=GALLERY_API)), output, VERSION_COLUMNS)


@version.command("show")
@closes_clients
def version_show(gallery_name: Name, definition_name: Name, name: Name, output: OutputOpt = Format.json,
                 server: ServerOpt = None, data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT,
                 group: GroupOpt = GROUP_DEFAULT) -> None:
    """Show an image version (with its replication status).

    Example: vmforge gallery version show mygallery ubuntu-nginx 1.0.0
    """
    c = connect(server, data_dir, subscription, group)
    path = c.target.compute(f"galleries/{gallery_name}/images/{definition_name}/versions/{name}")
    emit(guarded(lambda: c.get_json(path, api_version=GALLERY_API, params={"$expand": "ReplicationStatus"})),
         output, VERSION_COLUMNS)


@version.command("delete")
@closes_clients
def version_delete(gallery_name: Name, definition_name: Name, name: Name, server: ServerOpt = None,
                   data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT,
                   group: GroupOpt = GROUP_DEFAULT) -> None:
    """Delete an image version.

    Example: vmforge gallery version delete mygallery ubuntu-nginx 1.0.0
    """
    c = connect(server, data_dir, subscription, group)
    path = c.target.compute(f"galleries/{gallery_name}/images/{definition_name}/versions/{name}")
    guarded(lambda: _delete(c, path, name, GALLERY_API))
