"""credentials: per-org usernames and issuers; client secret rotation and disabling; IdP jwks_uri

Revision ID: 0008_credentials
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0008_credentials"
down_revision = "0007"
branch_labels = None
depends_on = None

# SQLite's unnamed unique constraints get these names on reflection, so that batch mode can drop them.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_username")
        batch_op.create_index("ix_users_username", ["username"], unique=False)
        batch_op.create_unique_constraint("uq_users_org_username", ["org_id", "username"])
    with op.batch_alter_table("identity_providers", schema=None, naming_convention=NAMING) as batch_op:
        batch_op.drop_constraint(
            "uq_identity_providers_issuer" if sqlite else "identity_providers_issuer_key", type_="unique"
        )
        batch_op.create_unique_constraint("uq_identity_providers_org_issuer", ["org_id", "issuer"])
        batch_op.create_index("ix_identity_providers_issuer", ["issuer"], unique=False)
        batch_op.add_column(sa.Column("jwks_uri", AutoString(length=2000), nullable=True))
        batch_op.add_column(sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("updated_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("integration_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret_hash", AutoString(), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_until", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("integration_clients", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_until")
        batch_op.drop_column("previous_secret_hash")
    with op.batch_alter_table("identity_providers", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("is_active")
        batch_op.drop_column("jwks_uri")
        batch_op.drop_index("ix_identity_providers_issuer")
        batch_op.drop_constraint("uq_identity_providers_org_issuer", type_="unique")
        batch_op.create_unique_constraint("uq_identity_providers_issuer", ["issuer"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_org_username", type_="unique")
        batch_op.drop_index("ix_users_username")
        batch_op.create_index("ix_users_username", ["username"], unique=True)
