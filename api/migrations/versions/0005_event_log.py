"""events: a commit-ordered position (`pos`) given by the log's sequencer, and the log's row

Revision ID: 0005
Revises: 0004
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("pos", sa.BigInteger(), nullable=True))
        batch_op.drop_index("ix_events_channel_id")
    # Events stored before the log committed long ago: their insert order is their order.
    op.execute("UPDATE events SET pos = id")
    op.create_index("ix_events_channel_pos", "events", ["channel", "pos"])
    op.create_index("ux_events_pos", "events", ["pos"], unique=True)
    op.create_index(
        "ix_events_unsequenced",
        "events",
        ["id"],
        postgresql_where=sa.text("pos IS NULL"),
        sqlite_where=sa.text("pos IS NULL"),
    )
    op.create_table(
        "event_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("log_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(f"INSERT INTO event_log (id, log_id) VALUES (1, '{uuid.uuid4().hex}')")


def downgrade() -> None:
    op.drop_table("event_log")
    op.drop_index("ix_events_unsequenced", "events")
    op.drop_index("ux_events_pos", "events")
    op.drop_index("ix_events_channel_pos", "events")
    with op.batch_alter_table("events") as batch_op:
        batch_op.create_index("ix_events_channel_id", ["channel", "id"])
        batch_op.drop_column("pos")
