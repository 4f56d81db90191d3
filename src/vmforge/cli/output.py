"""Output of the client commands: ``-o json|table|yaml``, error lines, and the options every client command
shares (server, data dir, subscription, resource group).

Without a terminal (a pipe, a file, CI) everything is plain text: no colour, no box drawing, no spinner.
``NO_COLOR`` turns colour off on a terminal too (Rich honours it).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from vmforge.cli.client import DEFAULT_GROUP, DEFAULT_SUBSCRIPTION, Client, ClientError, Target


class Format(str, Enum):
    json = "json"
    table = "table"
    yaml = "yaml"


# ----------------------------------------------------------------------------------------------- shared options
ServerOpt = Annotated[Optional[str], typer.Option("--server", envvar="VMFORGE_SERVER", show_default=False,
                                                  help="Server URL (default: the local server of the data dir).")]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", show_default=False, help="Data dir whose local "
                                                    "server (server.json, token) to use (default: $VMFORGE_HOME, "
                                                    "else the XDG data dir).")]
SubOpt = Annotated[str, typer.Option("--subscription", envvar="VMFORGE_SUBSCRIPTION", help="Subscription id.")]
GroupOpt = Annotated[str, typer.Option("--resource-group", "-g", envvar="VMFORGE_RESOURCE_GROUP",
                                       help="Resource group.")]
OutputOpt = Annotated[Format, typer.Option("--output", "-o", help="Output format.")]
ApiOpt = Annotated[str, typer.Option("--api-version", help="imageTemplates api-version to speak.")]
SUB_DEFAULT = DEFAULT_SUBSCRIPTION
GROUP_DEFAULT = DEFAULT_GROUP


def is_tty() -> bool:
    return sys.stdout.isatty()


def console(stderr: bool = False) -> Console:
    """A Rich console on stdout (or stderr): styled on a terminal, plain text otherwise."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True,
                   no_color=bool(os.environ.get("NO_COLOR")) or None)


def connect(server: str | None, data_dir: Path | None, subscription: str, group: str,
            api_version: str | None = None) -> Client:
    """A client for the options of a command, or the ``error:`` line and exit 1."""
    from vmforge.cli.client import IMAGEBUILDER_API

    try:
        client = Client.connect(server, data_dir, Target(subscription, group, api_version or IMAGEBUILDER_API))
    except ClientError as e:
        fail(e)
    _OPEN.append(client)
    return client


_OPEN: list[Client] = []


def closes_clients(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command: the clients it connected are closed when it returns or exits (in-process callers,
    such as tests, would otherwise keep idle connections that a server's graceful shutdown waits for)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            while _OPEN:
                _OPEN.pop().close()
    return wrapper


def fail(e: ClientError, code: int = 1) -> NoReturn:
    """Print an error as ``error: <code>: <message>`` and each detail as ``  <target>: <message>``; exit."""
    print_error(e)
    raise typer.Exit(code)


def print_error(e: ClientError) -> None:
    typer.echo(f"error: {e.code}: {e.message}", err=True)
    for d in e.details:
        target = d.get("target")
        typer.echo(f"  {target}: {d.get('message', '')}" if target else f"  {d.get('message', '')}", err=True)


def guarded(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a ``ClientError`` becomes the error lines and exit status 1."""
    try:
        return fn()
    except ClientError as e:
        fail(e)


# ----------------------------------------------------------------------------------------------- rendering
Column = tuple[str, Callable[[dict[str, Any]], Any]]


def dig(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]…``, or None where a level is missing."""
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def emit(data: Any, fmt: Format, columns: Sequence[Column] | None = None) -> None:
    """Print ``data`` (a resource or a list of them) as JSON, YAML, or a table of ``columns``."""
    if fmt is Format.json:
        typer.echo(json.dumps(data, indent=2))
    elif fmt is Format.yaml:
        typer.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
    else:
        rows = data if isinstance(data, list) else [data]
        cols = list(columns or [("Name", lambda r: r.get("name"))])
        table(cols, [[_cell(get(r)) for _, get in cols] for r in rows])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def table(columns: Sequence[Column], rows: list[list[str]]) -> None:
    """A Rich table on a terminal; az-style aligned columns (header, dashes) otherwise."""
    heads = [c[0] for c in columns]
    if is_tty():
        t = Table(*heads, show_edge=False, header_style="bold")
        for row in rows:
            t.add_row(*row)
        console().print(t)
        return
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(heads)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    typer.echo(line(heads))
    typer.echo(line(["-" * w for w in widths]))
    for r in rows:
        typer.echo(line(r))
