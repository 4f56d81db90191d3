"""identity: service principals and role assignments

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'service_principals',
        sa.Column('object_id', sa.String(length=36), nullable=False),
        sa.Column('app_id', sa.String(length=36), nullable=False),
        sa.Column('display_name', sa.String(length=256), nullable=False),
        sa.Column('secret_hash', sa.String(length=256), nullable=False),
        sa.Column('bootstrap', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('object_id'),
        sa.UniqueConstraint('app_id'),
    )
    op.create_table(
        'role_assignments',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('principal_id', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=64), nullable=False),
        sa.Column('scope', sa.String(length=600), nullable=False),
        sa.Column('scope_key', sa.String(length=600), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('principal_id', 'role', 'scope_key', name='uq_role_assignment'),
    )
    op.create_index('ix_role_assignments_principal', 'role_assignments', ['principal_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_role_assignments_principal', table_name='role_assignments')
    op.drop_table('role_assignments')
    op.drop_table('service_principals')
