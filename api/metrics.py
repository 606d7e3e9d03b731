"""The domain series on /metrics, kept in the kernel so that every domain records its own without
importing another's. Every label has a bounded set of values (an enum, a fixed list, a code defined
in the source): never an id, a user or free text. Each process reports its own (README, Metrics).

Counters and histograms are recorded where the thing happens, once it is durable (`count_after_commit`);
gauges read from the database are refreshed at scrape time by the functions registered with
`on_scrape` (one bounded query each), so a scrape costs the same however busy the node is."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("liaison.metrics")

OFFER_OUTCOMES = ("made", "accepted", "declined", "expired", "withdrawn")
OFFERS = Counter("liaison_offers_total", "Offers made, and how they ended, on this node", ["outcome"])
ESCALATION_STEPS = Counter(
    "liaison_escalation_steps_total",
    "Escalation steps run by this node: advanced (routing moved on) or stale (superseded, skipped)",
    ["result"],
)
TIME_TO_ACCEPT = Histogram(
    "liaison_time_to_accept_seconds",
    "From a consult's request to a specialist's accept",
    ["urgency"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)
CONSULTS = Gauge(
    "liaison_consults", "Consults by status and urgency (the database, at scrape)", ["status", "urgency"]
)
UNASSIGNED = Gauge(
    "liaison_unassigned_consults", "Consults in the coordinators' queue (the database, at scrape)"
)
UNASSIGNED_AGE = Gauge(
    "liaison_unassigned_oldest_seconds", "Since the request of the oldest consult in the queue; 0 when empty"
)
EVENTS_SOCKETS = Gauge("liaison_events_sockets_open", "Authenticated /api/v1/events sockets on this process")
SIGNALING_ROOMS = Gauge("liaison_signaling_rooms", "Call rooms with a peer connected to this process")
SIGNALING_PEERS = Gauge("liaison_signaling_peers", "Signaling peers held by this process (in grace too)")
SIGNALING_RELAYED = Counter(
    "liaison_signaling_messages_relayed_total", "offer, answer and candidate messages relayed", ["type"]
)
SIGNALING_ERRORS = Counter(
    "liaison_signaling_errors_total", "error messages sent to signaling peers", ["code"]
)
STORE_ERRORS = Counter(
    "liaison_store_errors_total",
    "Faults of a store (requests answered 503, background steps retried)",
    ["store"],
)

Scraper = Callable[[Any], Awaitable[None]]
_scrapers: list[Scraper] = []
SCRAPE_TIMEOUT = 2.0  # a database slow to answer leaves the gauges as they were, not the scrape hanging


def on_scrape(scraper: Scraper) -> None:
    """Register `scraper(app_state)`, run before each /metrics answer (liaison/app.py registers them)."""
    if scraper not in _scrapers:
        _scrapers.append(scraper)


async def collect(state: Any) -> None:
    """Refresh the scrape-time gauges; a failing one is logged and counted, the scrape still answers."""
    for scraper in _scrapers:
        try:
            await asyncio.wait_for(scraper(state), SCRAPE_TIMEOUT)
        except Exception as exc:  # a scrape reports what it can; the failure is logged and counted
            from api.errors import log_failure

            log_failure(log, "a metrics collector failed", exc)


def count_after_commit(session: AsyncSession, counter: Counter, amount: float = 1, **labels: str) -> None:
    """Increment once the session's transaction is durable: a rolled-back change is never counted."""
    from api.db import after_commit  # here: api.db imports api.errors, which counts into this module

    async def inc(_: object) -> None:
        counter.labels(**labels).inc(amount)

    after_commit(session, inc)


def observe_after_commit(session: AsyncSession, histogram: Histogram, value: float, **labels: str) -> None:
    from api.db import after_commit

    async def observe(_: object) -> None:
        histogram.labels(**labels).observe(value)

    after_commit(session, observe)
