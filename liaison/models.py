"""Every domain's tables in one metadata: what autogenerating a migration compares the schema with.

The kernel's migration environment (api/migrations/env.py) imports no domain, so whoever
autogenerates hands this in along with the connection:

    cfg = api.migrate.alembic_config()
    cfg.attributes.update(connection=conn, target_metadata=liaison.models.metadata())
    alembic.command.revision(cfg, message="...", autogenerate=True)
"""

from sqlalchemy import MetaData
from sqlmodel import SQLModel

import agreements.models  # noqa: F401  (tables register on import)
import audit.models  # noqa: F401
import auth.models  # noqa: F401
import consults.attachments.models  # noqa: F401
import consults.models  # noqa: F401
import events.models  # noqa: F401
import orgs.models  # noqa: F401
import rosters.models  # noqa: F401
import signaling.models  # noqa: F401
import webhooks.models  # noqa: F401


def metadata() -> MetaData:
    return SQLModel.metadata
