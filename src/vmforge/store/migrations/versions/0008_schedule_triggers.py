"""Schedule triggers (cron, time zone, condition, next and last fire time) and each run's inputs fingerprint

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch_op:
        batch_op.add_column(sa.Column("schedule", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("condition", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("next_run_time", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_fired_time", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(sa.Column("inputs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("inputs")
    with op.batch_alter_table("triggers") as batch_op:
        for name in ("last_fired_time", "next_run_time", "condition", "time_zone", "schedule"):
            batch_op.drop_column(name)
