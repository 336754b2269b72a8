"""source health: the last problem each source met (quota exhausted until ..., expired session), for status

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

import hub.store.schema

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('source_health',
    sa.Column('connector', sa.String(length=32), nullable=False),
    sa.Column('shop', sa.String(length=64), nullable=False),
    sa.Column('stream', sa.String(length=32), nullable=False, comment="a stream name, or '*' for the whole shop"),
    sa.Column('state', sa.String(length=32), nullable=False, comment='ok | quota_exhausted | configuration | transient: what the last run of this source met'),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('how_to_fix', sa.Text(), nullable=True),
    sa.Column('until', hub.store.schema.UTCDateTime(), nullable=True, comment='quota exhausted: when the platform resets it'),
    sa.Column('updated_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('connector', 'shop', 'stream', name=op.f('pk_source_health'))
    )


def downgrade() -> None:
    op.drop_table('source_health')
