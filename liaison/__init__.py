"""The composition root, on top of every layer: the app factory and its lifespan (app.py), the `liaison`
command line (cli.py), demo data, and every domain's tables in one metadata (models.py)."""
