"""calls

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 12:33:57.492619
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consult_id", sa.Uuid(), nullable=False),
        sa.Column("room", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["consult_id"],
            ["consults.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calls_consult_id"), ["consult_id"], unique=False)

    op.create_table(
        "consult_participants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consult_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"],
            ["consults.id"],
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consult_id", "user_id"),
    )
    with op.batch_alter_table("consult_participants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consult_participants_consult_id"), ["consult_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consult_participants_user_id"), ["user_id"], unique=False)

    op.create_table(
        "call_attendance",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("peer_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("joined_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("left_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("call_attendance", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_attendance_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_attendance_peer_id"), ["peer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("call_attendance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_attendance_peer_id"))
        batch_op.drop_index(batch_op.f("ix_call_attendance_call_id"))

    op.drop_table("call_attendance")
    with op.batch_alter_table("consult_participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consult_participants_user_id"))
        batch_op.drop_index(batch_op.f("ix_consult_participants_consult_id"))

    op.drop_table("consult_participants")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_consult_id"))

    op.drop_table("calls")
