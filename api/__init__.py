"""Liaison's kernel: settings, database, errors, middleware, health, Redis, migrations. It imports no domain."""
