"""the ledger becomes the paid-call journal: a row is written before each call goes out

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='recorded', nullable=False))
        batch_op.add_column(sa.Column('run_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('fingerprint', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('external_id', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_ledger_run_id'), ['run_id'], unique=False)
        batch_op.create_index('ix_ledger_entry_fingerprint', ['entry_id', 'fingerprint'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entry_fingerprint')
        batch_op.drop_index(batch_op.f('ix_ledger_run_id'))
        batch_op.drop_column('updated_at')
        batch_op.drop_column('external_id')
        batch_op.drop_column('fingerprint')
        batch_op.drop_column('run_id')
        batch_op.drop_column('status')
