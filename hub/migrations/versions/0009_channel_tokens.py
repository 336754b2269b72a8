"""channel tokens: refreshed sessions shared by every process (a refresh token is single use)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

import hub.store.schema

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('channel_tokens',
    sa.Column('connector', sa.String(length=32), nullable=False),
    sa.Column('account', sa.String(length=191), nullable=False, comment='whose tokens: gateway + app key + shop'),
    sa.Column('access_token', sa.Text(), nullable=False),
    sa.Column('refresh_token', sa.Text(), nullable=True),
    sa.Column('expires_at', hub.store.schema.UTCDateTime(), nullable=True),
    sa.Column('lifetime_s', sa.Integer(), nullable=True),
    sa.Column('refreshed_at', hub.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('connector', 'account', name=op.f('pk_channel_tokens')),
    comment='sessions refreshed by the hub: a refresh token is single use, so every process must see the newest'
    )


def downgrade() -> None:
    op.drop_table('channel_tokens')
