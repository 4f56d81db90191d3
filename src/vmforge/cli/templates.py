"""``vmforge template create|show|list|delete|update-tags`` and ``vmforge cancel|runs|outputs``: image templates
and their runs over the REST API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vmforge.cli.client import RESOURCES_API, Client, ClientError
from vmforge.cli.output import (
    GROUP_DEFAULT,
    SUB_DEFAULT,
    ApiOpt,
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
    fail,
    guarded,
)
from vmforge.cli.validate import find_templates, is_expression

app = typer.Typer(no_args_is_help=True, help="Image templates on a vmforge server (REST).")

NameArg = Annotated[str, typer.Argument(help="Image template name.", show_default=False)]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Return once the server accepted the request.")]
CreateGroupOpt = Annotated[bool, typer.Option("--create-group", help="Create the resource group, in the "
                                              "template's location, when it does not exist.")]

TEMPLATE_COLUMNS: list[Column] = [
    ("Name", lambda r: r.get("name")),
    ("Location", lambda r: r.get("location")),
    ("Provisioning", lambda r: dig(r, "properties", "provisioningState")),
    ("LastRun", lambda r: dig(r, "properties", "lastRunStatus", "runState")),
    ("SubState", lambda r: dig(r, "properties", "lastRunStatus", "runSubState")),
    ("Source", lambda r: dig(r, "properties", "source", "type")),
]
RUN_COLUMNS: list[Column] = [
    ("Id", lambda r: r.get("id")),
    ("State", lambda r: r.get("runState")),
    ("SubState", lambda r: r.get("runSubState")),
    ("Start", lambda r: r.get("startTime")),
    ("End", lambda r: r.get("endTime")),
    ("Message", lambda r: (r.get("message") or "")[:80]),
]
OUTPUT_COLUMNS: list[Column] = [
    ("Name", lambda r: r.get("name")),
    ("State", lambda r: dig(r, "properties", "provisioningState")),
    ("Artifact", lambda r: dig(r, "properties", "artifactId") or dig(r, "properties", "artifactUri")),
]


def load_body(path: Path, name: str | None) -> tuple[str, dict[str, Any]]:
    """The template name and PUT body in a file (any shape ``vmforge validate`` accepts but bare properties).
    The name is ``name``, else the ARM resource's name, else the file's stem."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as e:
        raise ClientError("InvalidTemplateFile", f"{path}: {e}") from None
    items = find_templates(doc, str(path), None)
    names = [i.label for i in items]
    if len(items) > 1:
        wanted = [i for i in items if name and i.name == name]
        if len(wanted) != 1:
            raise ClientError("AmbiguousTemplate", f"{path} holds {len(items)} image templates ({', '.join(names)}); "
                              "pick one with --name NAME")
        items = wanted
    if not items:
        raise ClientError("NoImageTemplate", f"{path} holds no image template")
    item = items[0]
    if item.note:
        raise ClientError("IncompleteTemplate", f"{path} is {item.note.split(':')[0]}; a template needs location, "
                          "identity and properties")
    final = name or item.name or path.stem
    if _has_expression(item.body):
        raise ClientError("TemplateExpressions", f"{path} holds ARM template expressions ('[...]'); substitute "
                          "their values before sending it to a server")
    return final, item.body


def _has_expression(body: Any) -> bool:
    if isinstance(body, dict):
        return any(is_expression(k) or _has_expression(v) for k, v in body.items())
    if isinstance(body, list):
        return any(_has_expression(v) for v in body)
    return is_expression(body)


def group_path(client: Client) -> str:
    return f"/subscriptions/{client.target.subscription}/resourceGroups/{client.target.group}"


def ensure_group(client: Client, location: str) -> bool:
    """Create the target's resource group in ``location`` unless it exists (an existing one is left as it is,
    tags and all); whether it was created."""
    path = group_path(client)
    if client.request("HEAD", path, api_version=RESOURCES_API, ok_404=True).status_code != 404:
        return False
    client.request("PUT", path, api_version=RESOURCES_API, json_body={"location": location})
    return True


def put_template(client: Client, name: str, body: dict[str, Any], wait: bool = True,
                 create_group: bool = False) -> tuple[dict[str, Any], bool]:
    """PUT a template (201 new, 200 identical or tags-only) and wait for its provisioning; (resource, created).
    A template needs its resource group: ``create_group`` makes it first (in the template's location); without
    it, a missing group is an error that names it and says how to create it."""
    location = str(body.get("location") or "")
    if create_group and location and ensure_group(client, location):
        typer.echo(f"resource group {client.target.group}: created in {location}", err=True)
    try:
        r = client.request("PUT", client.target.template(name), json_body=body)
    except ClientError as e:
        if e.code != "ResourceGroupNotFound":
            raise
        where = f" in '{location}'" if location else ""
        raise ClientError(e.code, f"The resource group '{client.target.group}' does not exist in subscription "
                          f"'{client.target.subscription}'. Create it{where} with --create-group, or name another "
                          "with -g.", e.details, e.status) from None
    if wait:
        client.wait(r)
        return client.get_json(client.target.template(name)), r.status_code == 201
    return r.json(), r.status_code == 201


@app.command("create")
@closes_clients
def create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Template JSON file.")],
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Template name (default: the resource's "
                                                "name, else the file name without .json).")] = None,
    no_wait: NoWaitOpt = False, create_group: CreateGroupOpt = False, output: OutputOpt = Format.table,
    api_version: ApiOpt = "2025-10-01", server: ServerOpt = None, data_dir: DataDirOpt = None,
    subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT,
) -> None:
    """Create an image template from a file (an identical template already there is reused).

    Example: vmforge template create ubuntu-nginx.json -g images --create-group
    """
    client = connect(server, data_dir, subscription, group, api_version)
    tname, body = guarded(lambda: load_body(file, name))
    resource, _ = guarded(lambda: put_template(client, tname, body, wait=not no_wait, create_group=create_group))
    emit(resource, output, TEMPLATE_COLUMNS)


@app.command("show")
@closes_clients
def show(name: NameArg, output: OutputOpt = Format.json, api_version: ApiOpt = "2025-10-01", server: ServerOpt = None,
         data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """Show an image template.

    Example: vmforge template show ubuntu-nginx -o yaml
    """
    client = connect(server, data_dir, subscription, group, api_version)
    emit(guarded(lambda: client.get_json(client.target.template(name))), output, TEMPLATE_COLUMNS)


@app.command("list")
@closes_clients
def list_(all_groups: Annotated[bool, typer.Option("--all", help="Every resource group of the subscription.")] = False,
          output: OutputOpt = Format.table, api_version: ApiOpt = "2025-10-01", server: ServerOpt = None,
          data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """List the image templates of a resource group (or of the subscription with --all).

    Example: vmforge template list --all -o json
    """
    client = connect(server, data_dir, subscription, group, api_version)
    path = (f"/subscriptions/{subscription}/providers/Microsoft.VirtualMachineImages/imageTemplates" if all_groups
            else client.target.template())
    emit(guarded(lambda: client.list_all(path)), output, TEMPLATE_COLUMNS)


@app.command("delete")
@closes_clients
def delete(name: NameArg, no_wait: NoWaitOpt = False, api_version: ApiOpt = "2025-10-01", server: ServerOpt = None,
           data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """Delete an image template (and its run outputs' records; images it built stay).

    Example: vmforge template delete ubuntu-nginx
    """
    client = connect(server, data_dir, subscription, group, api_version)
    r = guarded(lambda: client.request("DELETE", client.target.template(name)))
    if r.status_code == 204:
        typer.echo(f"{name}: nothing to delete", err=True)
        return
    if not no_wait:
        guarded(lambda: client.wait(r))
    typer.echo(f"{name}: {'deleting' if no_wait else 'deleted'}", err=True)


@app.command("update-tags")
@closes_clients
def update_tags(
    name: NameArg,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", "-t", help="KEY=VALUE (repeatable); the template's "
                                                     "tags become exactly these.")] = None,
    output: OutputOpt = Format.table, api_version: ApiOpt = "2025-10-01", server: ServerOpt = None,
    data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT,
) -> None:
    """Replace an image template's tags (PATCH); no --tag clears them.

    Example: vmforge template update-tags ubuntu-nginx --tag env=prod --tag owner=me
    """
    tags = {}
    for t in tag or []:
        key, sep, value = t.partition("=")
        if not sep or not key:
            fail(ClientError("InvalidTag", f"'{t}' is not KEY=VALUE"))
        tags[key] = value
    client = connect(server, data_dir, subscription, group, api_version)

    def go() -> dict[str, Any]:
        client.wait(client.request("PATCH", client.target.template(name), json_body={"tags": tags}))
        return client.get_json(client.target.template(name))
    emit(guarded(go), output, TEMPLATE_COLUMNS)


def register(root: typer.Typer) -> None:
    """Add ``cancel``, ``runs`` and ``outputs`` to the top-level app."""
    root.command("cancel")(closes_clients(cancel))
    root.command("runs")(closes_clients(runs))
    root.command("outputs")(closes_clients(outputs))


def cancel(name: NameArg, no_wait: NoWaitOpt = False, api_version: ApiOpt = "2025-10-01", server: ServerOpt = None,
           data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """Cancel the run in progress of an image template.

    Example: vmforge cancel ubuntu-nginx
    """
    client = connect(server, data_dir, subscription, group, api_version)
    r = guarded(lambda: client.request("POST", client.target.template(name) + "/cancel"))
    if not no_wait:
        guarded(lambda: client.wait(r))
    typer.echo(f"{name}: {'cancel requested' if no_wait else 'canceled'}", err=True)


def runs(name: NameArg, output: OutputOpt = Format.table, api_version: ApiOpt = "2025-10-01",
         server: ServerOpt = None, data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT,
         group: GroupOpt = GROUP_DEFAULT) -> None:
    """List the runs of an image template, newest first.

    Example: vmforge runs ubuntu-nginx -o json
    """
    from vmforge.cli.progress import list_runs

    client = connect(server, data_dir, subscription, group, api_version)
    emit(guarded(lambda: list_runs(client, name)), output, RUN_COLUMNS)


def outputs(name: NameArg, output: OutputOpt = Format.table, api_version: ApiOpt = "2025-10-01",
            server: ServerOpt = None, data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT,
            group: GroupOpt = GROUP_DEFAULT) -> None:
    """List the run outputs of an image template (the artifacts its last runs distributed).

    Example: vmforge outputs ubuntu-nginx
    """
    client = connect(server, data_dir, subscription, group, api_version)
    emit(guarded(lambda: client.list_all(client.target.template(name) + "/runOutputs")), output, OUTPUT_COLUMNS)

