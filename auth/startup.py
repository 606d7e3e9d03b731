"""Start-up: the auth context. (The platform admin the environment names is orgs.bootstrap's: it
comes with an org.)"""

from fastapi import FastAPI

from auth.context import build_auth_context


async def on_startup(app: FastAPI) -> None:
    app.state.auth = build_auth_context(app.state.settings, app.state.redis)
