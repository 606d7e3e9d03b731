"""The application factory: settings in, a wired FastAPI app out."""

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import health
from api.db import make_engine, make_sessionmaker
from api.errors import install_error_handlers
from api.middleware import MetricsMiddleware, RequestContextMiddleware
from api.redis import make_redis
from api.settings import Settings, get_settings
import agreements.router
import audit.hooks
import audit.router
import auth.router
import auth.startup
import orgs.router

log = logging.getLogger("liaison")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.engine = make_engine(settings.database_url)
        app.state.sessionmaker = make_sessionmaker(app.state.engine)
        app.state.redis = make_redis(settings.redis_url)
        await auth.startup.on_startup(app)
        try:
            yield
        finally:
            if app.state.redis is not None:
                await app.state.redis.aclose()
            await app.state.engine.dispose()

    app = FastAPI(title="Liaison", version="0.1.0", lifespan=lifespan,
                  description="Telemedicine consultation backend for civil-military health cooperation.")
    app.state.settings = settings
    app.state.on_denial = audit.hooks.record_denial
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware)
    app.include_router(health.router)
    for router in (auth.router.router, orgs.router.router, agreements.router.router, audit.router.router):
        app.include_router(router, prefix="/api/v1")
    return app
