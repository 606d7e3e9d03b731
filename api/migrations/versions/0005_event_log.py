"""events: a commit-ordered position (`pos`) given by the log's sequencer, and its cursor

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events') as batch_op:
        batch_op.add_column(sa.Column('pos', sa.BigInteger(), nullable=True))
        batch_op.drop_index('ix_events_channel_id')
    # Events stored before the log committed long ago: their insert order is their order.
    op.execute("UPDATE events SET pos = id")
    op.create_index('ix_events_channel_pos', 'events', ['channel', 'pos'])
    op.create_index('ux_events_pos', 'events', ['pos'], unique=True)
    op.create_index('ix_events_unsequenced', 'events', ['id'], postgresql_where=sa.text('pos IS NULL'),
                    sqlite_where=sa.text('pos IS NULL'))
    op.create_table('event_cursor',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('last_pos', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.execute("INSERT INTO event_cursor (id, last_pos) SELECT 1, COALESCE(MAX(id), 0) FROM events")


def downgrade() -> None:
    op.drop_table('event_cursor')
    op.drop_index('ix_events_unsequenced', 'events')
    op.drop_index('ux_events_pos', 'events')
    op.drop_index('ix_events_channel_pos', 'events')
    with op.batch_alter_table('events') as batch_op:
        batch_op.create_index('ix_events_channel_id', ['channel', 'id'])
        batch_op.drop_column('pos')
