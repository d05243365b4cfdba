"""kept_images: paid images that could not be stored or recorded, kept in the database (not only in one host's
recovery folder), so that a run on any host sharing the database records them without paying again

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kept_images',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('entry_id', sa.String(length=128), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_kept_images_entry_fingerprint', 'kept_images', ['entry_id', 'fingerprint'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_kept_images_entry_fingerprint', table_name='kept_images')
    op.drop_table('kept_images')
