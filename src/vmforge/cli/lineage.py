"""``vmforge lineage|revoke|unrevoke ARTIFACT``: the lineage extension routes (``vmforge.api.routes.lineage``)
from the CLI.

ARTIFACT is a managed image or gallery image version id, or the part of one after ``providers/Microsoft.Compute/``
(``images/NAME``, ``galleries/G/images/D/versions/1.0.0``) in the resource group ``-g``.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from vmforge.cli.output import (
    GROUP_DEFAULT,
    SUB_DEFAULT,
    DataDirOpt,
    Format,
    GroupOpt,
    OutputOpt,
    ServerOpt,
    SubOpt,
    closes_clients,
    connect,
    console,
    emit,
    guarded,
    is_tty,
)

API = "2025-10-01"
EXT = "/providers/Vmforge"

Artifact = Annotated[str, typer.Argument(show_default=False, help="A managed image or gallery image version id, "
                                         "or images/NAME | galleries/G/images/D/versions/V in -g.")]
CascadeOpt = Annotated[bool, typer.Option("--cascade", help="Also every descendant (built from it, at any depth).")]


def _path(c: Any, artifact: str) -> str:
    a = artifact.strip()
    return a.rstrip("/") if a.lower().startswith("/subscriptions/") else c.target.compute(a.strip("/"))


def _revoked(node: dict[str, Any]) -> str:
    r = node.get("revocation")
    if not r:
        return ""
    via = f", with its ancestor {r['cascadedFrom']}" if r.get("cascadedFrom") else ""
    who = (r.get("revokedBy") or {}).get("name") or (r.get("revokedBy") or {}).get("objectId")
    return f"  [bold red]REVOKED[/] {escape(r['revokedAt'])} by {escape(str(who))}{escape(via)}: {escape(r['reason'])}"


def _label(node: dict[str, Any]) -> str:
    if node.get("hidden"):
        return "[dim](an artifact you may not read)[/]"
    text = f"{escape(node['kind'])} [bold]{escape(node['id'])}[/]"
    run = node.get("run")
    if run:
        text += (f"  (run {run['runId']} of {escape(run['templateId'])}, revision v{run['templateVersion']} "
                 f"sha256:{run['templateSha256'][:12]})")
    elif node["kind"] != "PlatformImage":
        text += "  (origin unknown: not built by a vmforge run)"
    if node.get("exists") is False:
        text += "  [yellow](deleted)[/]"
    return text + _revoked(node)


def _add(tree: Tree, nodes: list[dict[str, Any]]) -> None:
    for n in nodes:
        _add(tree.add(_label(n)), n.get("children") or [])


def _console() -> Console:
    """On a terminal, Rich's own; in a pipe or a file, no wrapping (ids stay whole on their line, for grep)."""
    if is_tty():
        return console()
    return Console(width=100_000, highlight=False, soft_wrap=True, no_color=True)


def show(data: dict[str, Any]) -> None:
    p = data["properties"]
    out = _console()
    out.print("[bold]Chain up[/] (to the platform image):")
    up = Tree(_label(p["artifact"]))
    branch = up
    for n in p["ancestors"]:
        branch = branch.add("built from " + _label(n))
    if not p["ancestors"]:
        up.add("[dim](no recorded source)[/]")
    out.print(up)
    out.print("[bold]Descendants[/]:")
    down = Tree(_label(p["artifact"]))
    _add(down, p["descendants"])
    if not p["descendants"]:
        down.add("[dim](none)[/]")
    out.print(down)
    for h in p.get("history") or []:
        via = f" (with its ancestor {h['cascadedFrom']})" if h.get("cascadedFrom") else ""
        out.print(f"{escape(h['at'])} {escape(h['action'])} by {escape(str(h['by'].get('name')))}{escape(via)}: "
                  f"{escape(h.get('reason') or '')}")


@closes_clients
def lineage(artifact: Artifact, output: OutputOpt = Format.table, server: ServerOpt = None,
            data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """Print where an artifact came from (up to the platform image) and everything built from it, revoked ones
    marked.

    Example: vmforge lineage galleries/gal/images/debian/versions/1.0.0 -g images
    """
    c = connect(server, data_dir, subscription, group)
    data = guarded(lambda: c.get_json(_path(c, artifact) + EXT + "/lineage", api_version=API))
    if output is Format.table:
        show(data)
    else:
        emit(data, output)


@closes_clients
def revoke(artifact: Artifact,
           reason: Annotated[str, typer.Option("--reason", help="Why (stored, audited, shown everywhere).")],
           cascade: CascadeOpt = False, output: OutputOpt = Format.table, server: ServerOpt = None,
           data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """Revoke an artifact: nothing builds from it any more, and `latest` skips it. It is not deleted.

    Example: vmforge revoke galleries/gal/images/debian/versions/1.0.0 -g images --cascade --reason "CVE-2026-1234"
    """
    c = connect(server, data_dir, subscription, group)
    r = guarded(lambda: c.request("POST", _path(c, artifact) + EXT + "/revoke", api_version=API,
                                  json_body={"reason": reason, "cascade": cascade})).json()
    if output is not Format.table:
        emit(r, output)
        return
    for a in r["revoked"]:
        typer.echo(f"revoked: {a}")
    for a in r["alreadyRevoked"]:
        typer.echo(f"already revoked (unchanged): {a}")
    show(r["lineage"])


@closes_clients
def unrevoke(artifact: Artifact,
             reason: Annotated[Optional[str], typer.Option("--reason", help="Why (audited).")] = None,
             cascade: CascadeOpt = False, output: OutputOpt = Format.table, server: ServerOpt = None,
             data_dir: DataDirOpt = None, subscription: SubOpt = SUB_DEFAULT, group: GroupOpt = GROUP_DEFAULT) -> None:
    """Lift a revocation (with --cascade, also those it cascaded to).

    Example: vmforge unrevoke images/debian-base -g images --reason "false alarm"
    """
    c = connect(server, data_dir, subscription, group)
    body: dict[str, Any] = {"cascade": cascade}
    if reason is not None:
        body["reason"] = reason
    r = guarded(lambda: c.request("POST", _path(c, artifact) + EXT + "/unrevoke", api_version=API,
                                  json_body=body)).json()
    if output is not Format.table:
        emit(r, output)
        return
    for a in r["unrevoked"]:
        typer.echo(f"unrevoked: {a}")
    for a in r["notRevoked"]:
        typer.echo(f"not revoked (unchanged): {a}")
    show(r["lineage"])


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)
    app.command("revoke")(revoke)
    app.command("unrevoke")(unrevoke)
