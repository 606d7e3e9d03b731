"""The application factory, and the composition root: settings in, a wired FastAPI app out.

The one module that knows every domain: it mounts their routers, registers the hooks through which
a lower layer's changes reach a higher one, and runs their background tasks (README, Layout)."""

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

import agreements.hooks
import agreements.router
import api.metrics
import audit.router
import audit.witness
import auth.denials
import auth.router
import auth.startup
import auth.wellknown
import consults.access
import consults.attachments.router
import consults.boundary
import consults.hooks
import consults.metrics
import consults.notify
import consults.reoffer
import consults.router
import events.router
import fhir.router
import orgs.bootstrap
import orgs.hooks
import orgs.router
import rosters.hooks
import rosters.router
import signaling.edge.server
import signaling.router
import webhooks.router
from agreements.models import Agreement
from api import health
from api.cors import install_cors
from api.db import make_engine, make_sessionmaker
from api.docs import install_docs
from api.errors import install_error_handlers
from api.middleware import MetricsMiddleware, QueryTokenGuard, RequestContextMiddleware
from api.openapi import install as install_openapi
from api.openapi import operation_id
from api.proxy import TrustedProxies
from api.redis import make_redis
from api.settings import Settings, get_settings
from api.tasks import cancel
from audit.sealer import Sealer
from auth.dependencies import require
from auth.identity import authenticate
from auth.roles import Perm
from consults.attachments.storage import make_store
from consults.attachments.uploads import UPLOAD_PATH, largest
from consults.models import Consult
from consults.worker import EscalationWorker
from events.bus import LocalBus, make_feed
from events.log import EventLog
from fhir.edge import OperationOutcomes
from liaison import asyncapi
from orgs.models import Organization
from rosters.models import Roster
from signaling.calls import control
from signaling.calls.ice import ice_warnings
from signaling.edge import listener
from signaling.edge.server import SignalingServer
from signaling.fabric.ledger import make_ledger
from signaling.fabric.local import LocalFabric
from signaling.fabric.redis_fabric import RedisFabric
from signaling.peers.precall import PrecallRooms
from webhooks.worker import WebhookWorker

log = logging.getLogger("liaison")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for warning in ice_warnings(settings):
            log.warning("%s", warning)
        await _open_stores(app, settings)
        await auth.startup.on_startup(app)
        await orgs.bootstrap.on_startup(app)
        app.state.checkpointer = audit.witness.from_settings(settings)
        sealer = Sealer(
            app.state.sessionmaker, seconds=settings.audit_seal_seconds, checkpointer=app.state.checkpointer
        )
        sealer.start()
        worker = EscalationWorker(app.state.sessionmaker, poll_seconds=settings.escalation_poll_seconds)
        if settings.escalation_worker:
            worker.start()
        app.state.webhooks = WebhookWorker(app.state.sessionmaker, settings=settings, bus=app.state.bus)
        if settings.webhooks_worker:
            app.state.webhooks.start()
        orders = await _start_signaling(app, settings)
        try:
            yield
        finally:
            await _stop_signaling(app, orders)
            await app.state.webhooks.stop()
            await worker.stop()
            await sealer.stop()
            await _close_stores(app)

    app = FastAPI(
        title="Liaison",
        version="0.1.0",
        lifespan=lifespan,
        description="Telemedicine consultation backend for civil-military health cooperation.",
        generate_unique_id_function=operation_id,
        docs_url=None,  # served from packaged assets below, not a CDN
        redoc_url=None,
    )
    install_openapi(app)
    install_docs(app)
    app.state.settings = settings
    app.state.on_denial = auth.denials.record_denial
    # A lower package's change, a higher one's reaction: each hook is declared below and registered here.
    agreements.hooks.on_closed(consults.boundary.withdraw_offers)
    rosters.hooks.on_call(consults.reoffer.specialist_on_call)
    orgs.hooks.on_user_disabled(control.user_calls_end)
    consults.hooks.on_calls_ended(control.close_room)
    consults.hooks.on_removed_from_calls(control.remove_from_room)
    # A refusal on another org's resource is filed under that org too: whose each path id's row is.
    auth.denials.owned_by("org_id", Organization.id)
    auth.denials.owned_by("consult_id", Consult.org_id)
    auth.denials.owned_by("roster_id", Roster.org_id)
    auth.denials.owned_by("agreement_id", Agreement.requesting_org_id, Agreement.providing_org_id)
    # Gauges read when /metrics is scraped: each domain's own, from its tables or its state.
    api.metrics.on_scrape(consults.metrics.collect)
    api.metrics.on_scrape(signaling.edge.server.collect)
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        large_bodies=(UPLOAD_PATH, largest(settings)),  # tus PATCHes, streamed to the store
    )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(QueryTokenGuard)
    app.add_middleware(OperationOutcomes)
    # A preflight is answered before anything else reads the request.
    install_cors(app, origins=settings.cors_origins, max_age=settings.cors_max_age)
    # Outermost: everything inside (audit, sign-in limits, URLs) sees the client the proxy names.
    app.add_middleware(TrustedProxies, trusted=settings.trusted_proxies)
    app.include_router(health.router)
    app.include_router(auth.wellknown.router)
    app.include_router(fhir.router.router)
    app.include_router(asyncapi.router)
    # Audit and events sit below auth: their routers are handed its guard and its authentication.
    for router in (
        auth.router.router,
        orgs.router.router,
        agreements.router.router,
        audit.router.build(reader=require(Perm.audit_read)),
        rosters.router.router,
        consults.router.router,
        consults.attachments.router.router,
        events.router.build(
            authenticate=authenticate, admit=consults.access.admit, channels=consults.notify.channels_of
        ),
        signaling.router.router,
        webhooks.router.router,
    ):
        app.include_router(router, prefix="/api/v1")
    return app


async def _open_stores(app: FastAPI, settings: Settings) -> None:
    """Database, Redis (when configured), and on top of them the event log and the call ledger."""
    app.state.engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        connect_timeout=settings.db_connect_timeout,
    )
    app.state.redis = make_redis(settings.redis_url)
    app.state.bus = LocalBus()
    app.state.events = EventLog(
        bus=app.state.bus, feed=make_feed(app.state.redis), poll_seconds=settings.events_poll_seconds
    )
    app.state.ledger = make_ledger(app.state.redis, leeway=settings.clock_leeway)
    app.state.sessionmaker = make_sessionmaker(
        app.state.engine, ledger=app.state.ledger, on_events=app.state.events.kick
    )
    app.state.attachments = make_store(settings, app.state.sessionmaker)
    await app.state.events.start(app.state.sessionmaker)
    await app.state.ledger.start()


async def _close_stores(app: FastAPI) -> None:
    await app.state.events.stop()
    if app.state.redis is not None:
        await app.state.redis.aclose()
    await app.state.engine.dispose()


async def _start_signaling(app: FastAPI, settings: Settings) -> asyncio.Task:
    """The signaling server (a fabric through Redis when there is one), pre-call echo peers, the
    listener on its own port if asked for, and the task obeying close orders from any node."""
    fabric = (
        RedisFabric(app.state.redis, ledger=app.state.ledger, presence_ttl=settings.signaling_presence_ttl)
        if app.state.redis is not None
        else LocalFabric(app.state.ledger)
    )
    app.state.signaling = SignalingServer(
        settings=settings, auth=app.state.auth, sessions=app.state.sessionmaker, fabric=fabric
    )
    app.state.precall = PrecallRooms(app.state.signaling)
    await app.state.signaling.start()
    port = settings.signaling_port
    app.state.listener = (
        await listener.start(app.state.signaling, host=settings.host, port=port) if port else None
    )
    return asyncio.create_task(control.obey(app.state.bus, app.state.signaling), name="signaling-orders")


async def _stop_signaling(app: FastAPI, orders: asyncio.Task) -> None:
    await listener.stop(app.state.listener)
    await cancel(orders)
    await app.state.precall.stop()
    await app.state.signaling.stop()


def uvicorn_options(settings: Settings) -> dict:
    """How every server of ours runs the app: no per-message compression (it costs signaling
    throughput 2.7-3.6x), frames capped at the signaling limit (1009 beyond), protocol pings."""
    return {
        "ws_per_message_deflate": False,
        "ws_max_size": settings.signaling_max_message_bytes,
        "ws_ping_interval": settings.signaling_ping_interval,
        "ws_ping_timeout": settings.signaling_ping_timeout,
        "proxy_headers": False,  # api/proxy.py decides, from LIAISON_TRUSTED_PROXIES, on every server
    }
