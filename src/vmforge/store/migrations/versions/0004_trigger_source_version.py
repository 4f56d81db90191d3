"""SourceImage triggers remember the source version they last saw

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch_op:
        batch_op.add_column(sa.Column("source_version", sa.String(length=600), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("triggers") as batch_op:
        batch_op.drop_column("source_version")
