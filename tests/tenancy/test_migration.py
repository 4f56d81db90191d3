"""Upgrading a server's database to the tenancy schema (migration 0005) keeps what it served: every group that
held a template gets its resource group, and role assignments stored by role name now name the role's id."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from vmforge.service import groups
from vmforge.store.db import MIGRATIONS, Database


def _upgrade(engine: sa.Engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _row(table: sa.Table, **given: object) -> dict:
    """Values for every NOT NULL column of ``table`` (``given`` first, then a placeholder of the column's type)."""
    now = datetime.now(timezone.utc)
    out = dict(given)
    for col in table.columns:
        if col.name in out or col.nullable or col.primary_key and isinstance(col.type, sa.Integer):
            continue
        t = col.type
        out[col.name] = (now if isinstance(t, sa.DateTime) else {} if isinstance(t, sa.JSON)
                         else 1 if isinstance(t, (sa.Integer, sa.Boolean)) else "x")
    return out


def test_0005_backfills_groups_and_role_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    _upgrade(engine, "0004")
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        conn.execute(meta.tables["templates"].insert().values(**_row(
            meta.tables["templates"], subscription_key="sub-a", group_key="images", name_key="t1",
            subscription_id="Sub-A", resource_group="Images", name="t1", location="westus")))
        conn.execute(meta.tables["role_assignments"].insert().values(**_row(
            meta.tables["role_assignments"], id="a1", principal_id="p1", role="Contributor", scope="/",
            scope_key="/")))
    _upgrade(engine, "head")
    engine.dispose()

    db = Database(url)
    g = groups.require(db, "sub-a", "IMAGES")
    assert (g.subscription_id, g.name, g.location) == ("Sub-A", "Images", "westus")
    assert groups.get(db, "sub-a", "other") is None
    with db.read() as s:
        role = s.execute(sa.text("SELECT role, principal_type FROM role_assignments WHERE id = 'a1'")).one()
    assert tuple(role) == ("b24988ac-6180-42a0-ab88-20f7382dd24c", "ServicePrincipal")
    db.dispose()
