"""queue: what kind of run a run is (a ``generate`` or a queue ``worker``), spend caps shared by workers, and
provider call starts (a rate limit shared by workers)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=True))
    op.create_table('spend_caps',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('cap_usd', sa.Float(), nullable=False),
    sa.Column('reserved_usd', sa.Float(), nullable=False),
    sa.Column('spent_usd', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('call_starts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('call_starts', schema=None) as batch_op:
        batch_op.create_index('ix_call_starts_provider_started_at', ['provider', 'started_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('call_starts', schema=None) as batch_op:
        batch_op.drop_index('ix_call_starts_provider_started_at')
    op.drop_table('call_starts')
    op.drop_table('spend_caps')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('kind')
