"""consults: the first answer an Idempotency-Key's retries replay

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no backfill: the first answer of a consult keyed before now was never kept.
    with op.batch_alter_table("consults", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_answer", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consults", schema=None) as batch_op:
        batch_op.drop_column("first_answer")
