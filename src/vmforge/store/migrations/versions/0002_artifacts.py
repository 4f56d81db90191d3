"""artifacts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:08:18.780115
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('artifact_blobs',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('virtual_size', sa.BigInteger(), nullable=False),
    sa.Column('source_format', sa.String(length=16), nullable=False),
    sa.Column('refcount', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_table('artifact_galleries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_key', sa.String(length=64), nullable=False),
    sa.Column('group_key', sa.String(length=90), nullable=False),
    sa.Column('name_key', sa.String(length=80), nullable=False),
    sa.Column('subscription_id', sa.String(length=64), nullable=False),
    sa.Column('resource_group', sa.String(length=90), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('provisioning_state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscription_key', 'group_key', 'name_key', name='uq_artifact_gallery')
    )
    op.create_table('artifact_gallery_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gallery_id', sa.Integer(), nullable=False),
    sa.Column('os_type', sa.String(length=16), nullable=False),
    sa.Column('os_state', sa.String(length=16), nullable=False),
    sa.Column('hyper_v_generation', sa.String(length=4), nullable=False),
    sa.Column('publisher', sa.String(length=128), nullable=False),
    sa.Column('offer', sa.String(length=64), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('subscription_key', sa.String(length=64), nullable=False),
    sa.Column('group_key', sa.String(length=90), nullable=False),
    sa.Column('name_key', sa.String(length=80), nullable=False),
    sa.Column('subscription_id', sa.String(length=64), nullable=False),
    sa.Column('resource_group', sa.String(length=90), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('provisioning_state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['gallery_id'], ['artifact_galleries.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('gallery_id', 'name_key', name='uq_artifact_gallery_image')
    )
    with op.batch_alter_table('artifact_gallery_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifact_gallery_images_gallery_id'), ['gallery_id'], unique=False)

    op.create_table('artifact_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('os_type', sa.String(length=16), nullable=False),
    sa.Column('os_state', sa.String(length=16), nullable=False),
    sa.Column('hyper_v_generation', sa.String(length=4), nullable=False),
    sa.Column('blob_digest', sa.String(length=64), nullable=False),
    sa.Column('subscription_key', sa.String(length=64), nullable=False),
    sa.Column('group_key', sa.String(length=90), nullable=False),
    sa.Column('name_key', sa.String(length=80), nullable=False),
    sa.Column('subscription_id', sa.String(length=64), nullable=False),
    sa.Column('resource_group', sa.String(length=90), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('provisioning_state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['blob_digest'], ['artifact_blobs.digest'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscription_key', 'group_key', 'name_key', name='uq_artifact_image')
    )
    with op.batch_alter_table('artifact_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifact_images_blob_digest'), ['blob_digest'], unique=False)

    op.create_table('artifact_platform_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('publisher', sa.String(length=128), nullable=False),
    sa.Column('offer', sa.String(length=64), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('publisher_key', sa.String(length=128), nullable=False),
    sa.Column('offer_key', sa.String(length=64), nullable=False),
    sa.Column('sku_key', sa.String(length=64), nullable=False),
    sa.Column('major', sa.BigInteger(), nullable=False),
    sa.Column('minor', sa.BigInteger(), nullable=False),
    sa.Column('patch', sa.BigInteger(), nullable=False),
    sa.Column('os_type', sa.String(length=16), nullable=False),
    sa.Column('hyper_v_generation', sa.String(length=4), nullable=False),
    sa.Column('blob_digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['blob_digest'], ['artifact_blobs.digest'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('publisher_key', 'offer_key', 'sku_key', 'version', name='uq_artifact_platform_image')
    )
    with op.batch_alter_table('artifact_platform_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifact_platform_images_blob_digest'), ['blob_digest'], unique=False)

    op.create_table('artifact_gallery_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('major', sa.BigInteger(), nullable=False),
    sa.Column('minor', sa.BigInteger(), nullable=False),
    sa.Column('patch', sa.BigInteger(), nullable=False),
    sa.Column('exclude_from_latest', sa.Boolean(), nullable=False),
    sa.Column('source_id', sa.String(length=600), nullable=False),
    sa.Column('blob_digest', sa.String(length=64), nullable=False),
    sa.Column('subscription_key', sa.String(length=64), nullable=False),
    sa.Column('group_key', sa.String(length=90), nullable=False),
    sa.Column('name_key', sa.String(length=80), nullable=False),
    sa.Column('subscription_id', sa.String(length=64), nullable=False),
    sa.Column('resource_group', sa.String(length=90), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('provisioning_state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['blob_digest'], ['artifact_blobs.digest'], ),
    sa.ForeignKeyConstraint(['image_id'], ['artifact_gallery_images.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('image_id', 'name_key', name='uq_artifact_gallery_version')
    )
    with op.batch_alter_table('artifact_gallery_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifact_gallery_versions_blob_digest'), ['blob_digest'], unique=False)
        batch_op.create_index(batch_op.f('ix_artifact_gallery_versions_image_id'), ['image_id'], unique=False)

    op.create_table('artifact_version_replicas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('region_key', sa.String(length=64), nullable=False),
    sa.Column('replica_count', sa.Integer(), nullable=False),
    sa.Column('storage_account_type', sa.String(length=32), nullable=False),
    sa.Column('exclude_from_latest', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['artifact_gallery_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version_id', 'region_key', name='uq_artifact_replica')
    )
    with op.batch_alter_table('artifact_version_replicas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifact_version_replicas_version_id'), ['version_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('artifact_version_replicas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artifact_version_replicas_version_id'))

    op.drop_table('artifact_version_replicas')
    with op.batch_alter_table('artifact_gallery_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artifact_gallery_versions_image_id'))
        batch_op.drop_index(batch_op.f('ix_artifact_gallery_versions_blob_digest'))

    op.drop_table('artifact_gallery_versions')
    with op.batch_alter_table('artifact_platform_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artifact_platform_images_blob_digest'))

    op.drop_table('artifact_platform_images')
    with op.batch_alter_table('artifact_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artifact_images_blob_digest'))

    op.drop_table('artifact_images')
    with op.batch_alter_table('artifact_gallery_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artifact_gallery_images_gallery_id'))

    op.drop_table('artifact_gallery_images')
    op.drop_table('artifact_galleries')
    op.drop_table('artifact_blobs')
    
