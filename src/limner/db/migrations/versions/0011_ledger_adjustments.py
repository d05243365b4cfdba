"""ledger.adjusts: a run that settles another run's open line at another cost leaves that line as its run's summary
counted it and writes the difference as an adjustment line of its own, which names the line it adjusts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.add_column(sa.Column('adjusts', sa.Integer(), nullable=True))
        batch_op.create_index('ix_ledger_adjusts', ['adjusts'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_adjusts')
        batch_op.drop_column('adjusts')
