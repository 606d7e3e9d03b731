"""The ASGI entry point uvicorn imports: `liaison.asgi:app`."""

from liaison.app import create_app

app = create_app()
