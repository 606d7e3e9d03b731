"""consults: the integration client that requested a consult on a clinician's behalf

Revision ID: 0011_signing_keys
Revises: 0008_credentials
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_signing_keys"
down_revision = "0010_attachments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no backfill, no foreign key: deleting a client keeps the consults it requested.
    with op.batch_alter_table("consults", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_id", sa.Uuid(), nullable=True))
        batch_op.create_index("ix_consults_client_id", ["client_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("consults", schema=None) as batch_op:
        batch_op.drop_index("ix_consults_client_id")
        batch_op.drop_column("client_id")
