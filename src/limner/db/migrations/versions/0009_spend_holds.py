"""spend_holds: what each queue worker has reserved under a shared cap and not settled, so that a worker that
died between the two leaves its share counted as spent instead of held for good

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('spend_holds',
    sa.Column('cap_id', sa.String(length=36), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('reserved_usd', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['cap_id'], ['spend_caps.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cap_id', 'run_id')
    )


def downgrade() -> None:
    op.drop_table('spend_holds')
