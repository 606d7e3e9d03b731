"""Liveness, readiness and Prometheus metrics."""

from typing import Literal

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from starlette.responses import JSONResponse, PlainTextResponse, Response

from api.metrics import collect

router = APIRouter(tags=["operations"])


class Alive(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]  # each store: "ok", "not configured" or "error: <exception type>"


@router.get("/healthz", response_model=Alive, operation_id="checkLiveness")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    operation_id="checkReadiness",
    responses={503: {"model": Ready, "description": "A store is not answering; retry after `Retry-After` s"}},
)
async def readyz(request: Request) -> JSONResponse:
    """The database (and Redis, when configured) answer."""
    checks = {"database": await _check_db(request), "redis": await _check_redis(request)}
    ready = all(v in ("ok", "not configured") for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "2"},
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    operation_id="getMetrics",
    responses={200: {"description": "Prometheus text exposition format 0.0.4"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process."""
    await collect(request.app.state)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _check_db(request: Request) -> str:
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # readiness reports, it never raises
        return f"error: {type(exc).__name__}"


async def _check_redis(request: Request) -> str:
    redis = request.app.state.redis
    if redis is None:
        return "not configured"
    try:
        await redis.ping()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
