"""One attempt at a delivery: the signed POST, to an address the guard allows, timed, no redirect."""

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import httpx
import orjson

from api.outbound import AddressRefused, check_connected, check_resolved, split_url
from webhooks import signing


@dataclass(frozen=True)
class Job:
    """A claimed delivery, with what sending it needs (read in the claiming transaction)."""

    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    org_id: uuid.UUID
    consult_id: uuid.UUID | None
    lease: str
    url: str
    secrets: list[str]
    payload: dict
    attempt: int  # the number this attempt will have
    manual: bool


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: float
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def live_secrets(secret: str, previous: str | None, until: datetime | None, now: datetime) -> list[str]:
    """The current secret, and during a rotation's overlap the one before it."""
    return [secret] + ([previous] if previous and until and until > now else [])


async def send(client: httpx.AsyncClient, job: Job, *, timeout: float, allow_private: bool) -> Outcome:
    """POST the payload; any 2xx is delivered, anything else (a redirect too) an error to retry."""
    body = orjson.dumps(job.payload)
    headers = signing.headers(job.secrets, signing.webhook_id(job.delivery_id), int(time.time()), body)
    started = time.perf_counter()
    status, error = None, None
    try:
        async with asyncio.timeout(timeout):
            host, port = split_url(job.url, allow_private=allow_private, what="the endpoint URL")
            await check_resolved(host, port, allow_private=allow_private, what="the endpoint URL")
            async with client.stream("POST", job.url, content=body, headers=headers) as resp:
                check_connected(resp, allow_private=allow_private, what="the endpoint URL")
                status = resp.status_code
                if not 200 <= status < 300:
                    error = f"answered {status}"
    except AddressRefused as exc:
        error = str(exc)
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except (OSError, httpx.HTTPError) as exc:
        error = f"could not be reached ({type(exc).__name__})"
    return Outcome(status, round((time.perf_counter() - started) * 1000, 2), error)
