"""Liaison's application core: settings, database, errors, app factory."""
