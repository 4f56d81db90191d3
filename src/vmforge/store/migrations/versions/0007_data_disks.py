"""Data disks of artifacts: artifact_data_disks (one row per data disk of a managed image or a gallery image
version, pointing at its stored qcow2). See vmforge.store.artifact_models.ArtifactDataDisk.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifact_data_disks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("lun", sa.Integer(), nullable=False),
        sa.Column("blob_digest", sa.String(length=64), sa.ForeignKey("artifact_blobs.digest"), nullable=False),
        sa.UniqueConstraint("owner_kind", "owner_id", "lun", name="uq_artifact_data_disk"),
    )
    op.create_index("ix_artifact_data_disks_owner_id", "artifact_data_disks", ["owner_id"])
    op.create_index("ix_artifact_data_disks_blob_digest", "artifact_data_disks", ["blob_digest"])


def downgrade() -> None:
    op.drop_table("artifact_data_disks")
