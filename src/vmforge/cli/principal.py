"""``vmforge principal`` and ``vmforge role``: the identity provider's admin commands.

They work on the data dir's database directly (server-side admin commands, like ``vmforge token``: whoever can
read the data dir is its administrator), so they work with the server stopped too. A running server sees
a change within a second. Output is JSON, shaped as ``az ad sp create-for-rbac`` / ``az role assignment`` print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vmforge.errors import ArmError

principal_app = typer.Typer(no_args_is_help=True, help="Service principals that log in to vmforge "
                            "(client id + secret, OAuth2 client_credentials).")
role_app = typer.Typer(no_args_is_help=True, help="Role assignments (Owner, Contributor, Reader, "
                       "Image Builder Operator) at /, subscription or resource-group scope.")

DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Data directory of the server.",
                                                    show_default=False)]
DatabaseOpt = Annotated[Optional[str], typer.Option("--database-url", help="The server's database, when it is "
                                                    "not the data dir's SQLite.", show_default=False)]


def _open(data_dir: Path | None, database_url: str | None) -> tuple[Any, Any]:
    from vmforge.identity.store import IdentityStore
    from vmforge.settings import Settings, default_data_dir
    from vmforge.store.db import Database

    dd = (data_dir or default_data_dir()).expanduser().resolve()
    settings = Settings(data_dir=dd, database_url=database_url)
    if not database_url and not (dd / "vmforge.db").exists():
        typer.echo(f"error: no database in {dd}: start `vmforge serve --data-dir {dd}` once first", err=True)
        raise typer.Exit(1)
    db = Database(settings.db_url)
    db.migrate()
    return settings, IdentityStore(db)


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _fail(e: ArmError) -> None:
    typer.echo(f"error: {e.code}: {e.message}", err=True)
    raise typer.Exit(1)


@principal_app.command("create")
def create(name: Annotated[str, typer.Argument(help="Display name.")],
           role: Annotated[Optional[str], typer.Option(help="Assign this role too (e.g. Contributor).")] = None,
           scope: Annotated[Optional[str], typer.Option(help="Scope of --role, e.g. /subscriptions/ID "
                                                        "(default: /).")] = None,
           data_dir: DataDirOpt = None, database_url: DatabaseOpt = None) -> None:
    """Register a service principal; print {"appId", "displayName", "password", "tenant"} (the secret is shown
    only now).

    Example: vmforge principal create ci --role Contributor --scope /subscriptions/$SUB
    """
    settings, store = _open(data_dir, database_url)
    try:
        if role:
            from vmforge.identity.roles import normalize_scope

            store.role(role)
            normalize_scope(scope or "/")
        info, secret = store.create_principal(name)
        if role:
            store.assign(info.object_id, role, scope or "/")
    except ArmError as e:
        _fail(e)
        return
    _print({"appId": info.app_id, "displayName": info.display_name, "password": secret,
            "tenant": settings.tenant_id})


@principal_app.command("list")
def list_(data_dir: DataDirOpt = None, database_url: DatabaseOpt = None) -> None:
    """List service principals (never their secrets)."""
    _, store = _open(data_dir, database_url)
    _print([p.to_dict() for p in store.principals()])


@principal_app.command("delete")
def delete(ref: Annotated[str, typer.Argument(help="App id, object id or display name.")],
           data_dir: DataDirOpt = None, database_url: DatabaseOpt = None) -> None:
    """Delete a service principal and its role assignments; its tokens stop working."""
    _, store = _open(data_dir, database_url)
    try:
        info = store.find(ref)
        if info.bootstrap:
            typer.echo("error: the bootstrap admin cannot be deleted", err=True)
            raise typer.Exit(1)
        store.delete_principal(info.object_id)
    except ArmError as e:
        _fail(e)
        return
    _print(info.to_dict())


def _principal_id(store: Any, assignee: str) -> str:
    """A registered principal's object id — a service principal by app id, object id or name, a managed identity
    by resource id, client id or principal id — or ``assignee`` itself (an external issuer's object id)."""
    from vmforge.errors import NotFound
    from vmforge.identity import managed

    try:
        return store.find(assignee).object_id
    except NotFound:
        ident = (managed.by_id(store.db, assignee) or managed.by_client(store.db, assignee)
                 or managed.by_principal(store.db, assignee))
        return ident.principal_id if ident is not None else assignee


@role_app.command("assign")
def assign(assignee: Annotated[str, typer.Option("--assignee", help="App id, object id or name of a principal "
                                                 "(or an external issuer's object id).")],
           role: Annotated[str, typer.Option("--role", help="A built-in role (Owner, Contributor, Reader, "
                                             "'Image Builder Operator', …) or a custom one, by name or id.")],
           scope: Annotated[str, typer.Option("--scope", help="/, /subscriptions/ID or "
                                              "/subscriptions/ID/resourceGroups/NAME.")] = "/",
           data_dir: DataDirOpt = None, database_url: DatabaseOpt = None) -> None:
    """Give a principal a role over a scope (idempotent).

    Example: vmforge role assign --assignee ci --role Reader --scope /subscriptions/$SUB
    """
    _, store = _open(data_dir, database_url)
    try:
        a = store.assign(_principal_id(store, assignee), role, scope)
    except ArmError as e:
        _fail(e)
        return
    _print(a.to_dict())


@role_app.command("list")
def list_roles(assignee: Annotated[Optional[str], typer.Option("--assignee")] = None,
               data_dir: DataDirOpt = None, database_url: DatabaseOpt = None) -> None:
    """List role assignments (all, or one principal's)."""
    _, store = _open(data_dir, database_url)
    pid = _principal_id(store, assignee) if assignee else None
    _print([a.to_dict() for a in store.assignments(pid)])


@role_app.command("remove")
def remove(assignee: Annotated[Optional[str], typer.Option("--assignee")] = None,
           role: Annotated[Optional[str], typer.Option("--role")] = None,
           scope: Annotated[Optional[str], typer.Option("--scope")] = None,
           ids: Annotated[Optional[str], typer.Option("--ids", help="An assignment id.")] = None,
           data_dir: DataDirOpt = None, database_url: DatabaseOpt = None) -> None:
    """Remove role assignments: by --ids, or a principal's (narrowed by --role and --scope)."""
    _, store = _open(data_dir, database_url)
    if not ids and not assignee:
        typer.echo("error: give --ids or --assignee", err=True)
        raise typer.Exit(2)
    try:
        n = store.remove(assignment_id=ids, principal_id=_principal_id(store, assignee) if assignee else None,
                         role=role, scope=scope)
    except ArmError as e:
        _fail(e)
        return
    _print({"removed": n})


def register(app: typer.Typer) -> None:
    app.add_typer(principal_app, name="principal")
    app.add_typer(role_app, name="role")
