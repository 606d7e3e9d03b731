"""attachments: uploads (tus), their pieces, content-addressed blobs; message idempotency; read receipts

Revision ID: 0010_attachments
Revises: 0008_credentials
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0010_attachments"
down_revision = "0009_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachment_blobs",
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "attachment_chunks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256", "start"),
    )
    with op.batch_alter_table("attachment_chunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachment_chunks_sha256"), ["sha256"], unique=False)

    op.create_table(
        "attachment_uploads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consult_id", sa.Uuid(), nullable=False),
        sa.Column("uploader_id", sa.Uuid(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attachment_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"],
            ["consults.id"],
        ),
        sa.ForeignKeyConstraint(
            ["uploader_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("attachment_uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachment_uploads_consult_id"), ["consult_id"], unique=False)
        batch_op.create_index("ix_attachment_uploads_expires", ["status", "expires_at"], unique=False)

    op.create_table(
        "attachment_pieces",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("upload_id", sa.Uuid(), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("file", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["attachment_uploads.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("upload_id", "offset"),
    )
    with op.batch_alter_table("attachment_pieces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachment_pieces_upload_id"), ["upload_id"], unique=False)

    op.create_table(
        "attachments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consult_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("uploader_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("thumbnail_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"],
            ["consults.id"],
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["consult_messages.id"],
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.ForeignKeyConstraint(
            ["uploader_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachments_consult_id"), ["consult_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachments_message_id"), ["message_id"], unique=False)

    op.create_table(
        "consult_reads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consult_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("read_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"],
            ["consults.id"],
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["consult_messages.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consult_id", "user_id"),
    )
    with op.batch_alter_table("consult_reads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consult_reads_consult_id"), ["consult_id"], unique=False)

    with op.batch_alter_table("consult_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.add_column(
            sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.create_unique_constraint("uq_consult_messages_author_key", ["author_id", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("consult_messages", schema=None) as batch_op:
        batch_op.drop_constraint("uq_consult_messages_author_key", type_="unique")
        batch_op.drop_column("request_hash")
        batch_op.drop_column("idempotency_key")

    with op.batch_alter_table("consult_reads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consult_reads_consult_id"))

    op.drop_table("consult_reads")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_message_id"))
        batch_op.drop_index(batch_op.f("ix_attachments_consult_id"))

    op.drop_table("attachments")
    with op.batch_alter_table("attachment_pieces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachment_pieces_upload_id"))

    op.drop_table("attachment_pieces")
    with op.batch_alter_table("attachment_uploads", schema=None) as batch_op:
        batch_op.drop_index("ix_attachment_uploads_expires")
        batch_op.drop_index(batch_op.f("ix_attachment_uploads_consult_id"))

    op.drop_table("attachment_uploads")
    with op.batch_alter_table("attachment_chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachment_chunks_sha256"))

    op.drop_table("attachment_chunks")
    op.drop_table("attachment_blobs")
