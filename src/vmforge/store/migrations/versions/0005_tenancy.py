"""tenancy: resource groups, user-assigned managed identities, custom role definitions; role assignments name
a role definition id

Every (subscription, group) that already holds a template, an image or a gallery gets its resource group, so
that an upgraded server keeps serving what it stored.

Revision ID: 0005
Revises: 0004
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The built-in roles' names and ids as they were stored before (vmforge.identity.roles).
_BUILTIN = {"owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
            "reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
            "image builder operator": "6a6b1b4e-7f3a-4a8e-9c55-0b5d6f1e2a01"}


def upgrade() -> None:
    op.create_table(
        "resource_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_key", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.String(length=90), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=90), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("managed_by", sa.String(length=600), nullable=True),
        sa.Column("provisioning_state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_key", "group_key", name="uq_resource_group"),
    )
    op.create_table(
        "managed_identities",
        sa.Column("principal_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("subscription_key", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.String(length=90), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("resource_group", sa.String(length=90), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal_id"),
        sa.UniqueConstraint("client_id"),
        sa.UniqueConstraint("subscription_key", "group_key", "name_key", name="uq_managed_identity"),
    )
    op.create_table(
        "role_definitions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("role_name", sa.String(length=256), nullable=False),
        sa.Column("role_name_key", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=2048), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("assignable_scopes", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("role_name_key"),
    )
    with op.batch_alter_table("role_assignments") as batch_op:
        batch_op.add_column(sa.Column("principal_type", sa.String(length=32), nullable=False,
                                      server_default="ServicePrincipal"))
        batch_op.add_column(sa.Column("created_by", sa.String(length=64), nullable=True))
    with op.batch_alter_table("templates") as batch_op:
        batch_op.add_column(sa.Column("writer_object_id", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    for name, rid in _BUILTIN.items():
        conn.execute(sa.text("UPDATE role_assignments SET role = :rid WHERE lower(role) = :name"),
                     {"rid": rid, "name": name})
    now = datetime.now(timezone.utc)
    seen: set[tuple[str, str]] = set()
    for table in ("templates", "artifact_images", "artifact_galleries"):
        rows = conn.execute(sa.text(f"SELECT subscription_key, group_key, subscription_id, resource_group, location "
                                    f"FROM {table}")).fetchall()
        for sub_key, group_key, sub, group, location in rows:
            if (sub_key, group_key) in seen:
                continue
            seen.add((sub_key, group_key))
            conn.execute(sa.text(
                "INSERT INTO resource_groups (subscription_key, group_key, subscription_id, name, location, tags, "
                "provisioning_state, created_at) VALUES (:sk, :gk, :sub, :name, :loc, :tags, 'Succeeded', :now)"),
                {"sk": sub_key, "gk": group_key, "sub": sub, "name": group, "loc": location, "tags": "{}",
                 "now": now})


def downgrade() -> None:
    conn = op.get_bind()
    for name, rid in _BUILTIN.items():
        conn.execute(sa.text("UPDATE role_assignments SET role = :name WHERE role = :rid"),
                     {"rid": rid, "name": name.title() if name != "image builder operator" else
                      "Image Builder Operator"})
    with op.batch_alter_table("templates") as batch_op:
        batch_op.drop_column("writer_object_id")
    with op.batch_alter_table("role_assignments") as batch_op:
        batch_op.drop_column("created_by")
        batch_op.drop_column("principal_type")
    op.drop_table("role_definitions")
    op.drop_table("managed_identities")
    op.drop_table("resource_groups")
