"""Template fields: staging resource groups the service owns, autoRun, and the resources runs stage

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("templates") as batch_op:
        # Templates made before this revision got a generated IT_ id but no group: none is owned.
        batch_op.add_column(sa.Column("staging_group_owned", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("auto_run_pending", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "staging_resources",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subscription_key", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.String(length=90), nullable=False),
        sa.Column("type_key", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("resource_group", sa.String(length=90), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("subscription_key", "group_key", "type_key", "name_key", name="uq_staging_resource"),
    )
    op.create_index("ix_staging_resources_group_key", "staging_resources", ["group_key"])
    op.create_index("ix_staging_resources_template_id", "staging_resources", ["template_id"])
    op.create_index("ix_staging_resources_run_id", "staging_resources", ["run_id"])


def downgrade() -> None:
    op.drop_table("staging_resources")
    with op.batch_alter_table("templates") as batch_op:
        batch_op.drop_column("auto_run_pending")
        batch_op.drop_column("staging_group_owned")
