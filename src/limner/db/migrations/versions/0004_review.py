"""review: decisions, per-entry overrides, a render's review state, pinned entries

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.String(length=128), nullable=False),
    sa.Column('render_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['render_id'], ['renders.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decisions_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decisions_render_id'), ['render_id'], unique=False)
    op.create_table('overrides',
    sa.Column('entry_id', sa.String(length=128), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=True),
    sa.Column('negative_extra', sa.Text(), nullable=True),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.Column('style', sa.String(length=128), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('entry_id')
    )
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pinned', sa.Boolean(), server_default='0', nullable=False))
    with op.batch_alter_table('renders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_renders_review'), ['review'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('renders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_renders_review'))
        batch_op.drop_column('review')
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_column('pinned')
    op.drop_table('overrides')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisions_render_id'))
        batch_op.drop_index(batch_op.f('ix_decisions_entry_id'))
    op.drop_table('decisions')
