"""Lineage and revocation of artifacts: artifact_lineage (origin and revocation state of each artifact) and
artifact_revocations (the audit trail of revoke/unrevoke). See vmforge.store.lineage_models.

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifact_lineage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("artifact_key", sa.String(length=2000), nullable=False),
        sa.Column("artifact_id", sa.String(length=2000), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("artifact_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("template_id", sa.String(length=600), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("run_output", sa.String(length=64), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("template_sha256", sa.String(length=64), nullable=True),
        sa.Column("source_kind", sa.String(length=32), nullable=True),
        sa.Column("source_ref", sa.String(length=2000), nullable=True),
        sa.Column("source_key", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.Column("revoked_by_name", sa.String(length=256), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("revoked_via", sa.String(length=2000), nullable=True),
        sa.Column("revoke_cascade", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("artifact_key"),
    )
    with op.batch_alter_table("artifact_lineage") as batch_op:
        batch_op.create_index("ix_artifact_lineage_source_key", ["source_key"])
    op.create_table(
        "artifact_revocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lineage_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal_id", sa.String(length=64), nullable=False),
        sa.Column("principal_name", sa.String(length=256), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("via", sa.String(length=2000), nullable=True),
        sa.ForeignKeyConstraint(["lineage_id"], ["artifact_lineage.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("artifact_revocations") as batch_op:
        batch_op.create_index("ix_artifact_revocations_lineage_id", ["lineage_id"])


def downgrade() -> None:
    op.drop_table("artifact_revocations")
    op.drop_table("artifact_lineage")
