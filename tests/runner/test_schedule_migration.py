"""Migration 0008: a database with SourceImage triggers and runs gains the Schedule columns (empty), and loses
them again on downgrade, with its rows kept both ways."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from tests.tenancy.test_migration import _row, _upgrade
from vmforge.store.db import MIGRATIONS

NEW_TRIGGER = {"schedule", "time_zone", "condition", "next_run_time", "last_fired_time"}


def _downgrade(engine: sa.Engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def test_0008_up_and_down_keeps_rows(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _upgrade(engine, "0007")
    assert not NEW_TRIGGER & _columns(engine, "triggers") and "inputs" not in _columns(engine, "runs")
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as c:
        c.execute(meta.tables["templates"].insert().values(**_row(meta.tables["templates"], id=1)))
        c.execute(meta.tables["triggers"].insert().values(**_row(meta.tables["triggers"], id=1, template_id=1,
                                                                  kind="SourceImage", name="src")))
        c.execute(meta.tables["runs"].insert().values(**_row(meta.tables["runs"], id=7, template_id=1,
                                                          state="Succeeded")))
    _upgrade(engine, "0008")
    assert NEW_TRIGGER <= _columns(engine, "triggers") and "inputs" in _columns(engine, "runs")
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT kind, name, schedule, next_run_time FROM triggers")).all() == [
            ("SourceImage", "src", None, None)]
        assert c.execute(sa.text("SELECT id, state, inputs FROM runs")).all() == [(7, "Succeeded", None)]
    _downgrade(engine, "0007")
    assert not NEW_TRIGGER & _columns(engine, "triggers") and "inputs" not in _columns(engine, "runs")
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT kind, name FROM triggers")).all() == [("SourceImage", "src")]
        assert c.execute(sa.text("SELECT id FROM runs")).all() == [(7,)]
