"""An identity provider's keys from its `jwks_uri`: fetched with care (the URL is an org admin's input,
so the fetch is a request on their behalf from inside our network), cached, refreshed on an unknown kid."""

import asyncio
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from api.outbound import AddressRefused, check_connected, check_resolved, split_url
from api.settings import Settings
from auth.jwks import validate_jwks
from auth.tokens import Keyring

log = logging.getLogger("liaison.jwks")
MAX_JWKS_BYTES = 64 * 1024


class JwksUnavailable(Exception):
    """The keys could not be fetched, or are not a usable JWKS; the message says why (no secrets)."""


def check_uri(uri: str, *, allow_private: bool) -> tuple[str, int]:
    """Host and port of an acceptable jwks_uri (api.outbound); raise JwksUnavailable otherwise."""
    try:
        return split_url(uri, allow_private=allow_private, what="jwks_uri")
    except AddressRefused as exc:
        raise JwksUnavailable(str(exc)) from None


async def fetch_jwks(uri: str, *, timeout: float, allow_private: bool) -> dict:
    """GET the JWKS: every resolved address and the one connected to are checked, no redirect is
    followed, no proxy from the environment is used, the body is capped, the whole fetch is timed."""
    host, port = check_uri(uri, allow_private=allow_private)
    try:
        async with asyncio.timeout(timeout):
            await check_resolved(host, port, allow_private=allow_private, what="jwks_uri")
            return await _get(uri, timeout=timeout, allow_private=allow_private)
    except AddressRefused as exc:
        raise JwksUnavailable(str(exc)) from None
    except TimeoutError:
        raise JwksUnavailable("jwks_uri did not answer in time") from None
    except (OSError, httpx.HTTPError) as exc:
        raise JwksUnavailable(f"jwks_uri could not be fetched ({type(exc).__name__})") from None


async def _get(uri: str, *, timeout: float, allow_private: bool) -> dict:
    async with (
        httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        client.stream("GET", uri, headers={"accept": "application/json"}) as resp,
    ):
        # DNS may answer differently the second time (rebinding): the address connected to counts.
        check_connected(resp, allow_private=allow_private, what="jwks_uri")
        if resp.status_code != 200:
            raise JwksUnavailable(f"jwks_uri answered {resp.status_code}")
        body = b""
        async for chunk in resp.aiter_bytes():
            body += chunk
            if len(body) > MAX_JWKS_BYTES:
                raise JwksUnavailable("jwks_uri answered more than 64 KiB")
    try:
        jwks = json.loads(body)
        validate_jwks(jwks)
    except (ValueError, AttributeError, TypeError) as exc:
        raise JwksUnavailable(f"jwks_uri did not answer a usable JWKS: {exc}") from None
    return jwks


@dataclass
class _Entry:
    keyring: Keyring
    fetched_at: float


@dataclass
class JwksCache:
    """Per node. Keyed by registration and its updated_at, so an update on any node is seen by all."""

    settings: Settings
    _entries: dict[tuple[uuid.UUID, datetime | None], _Entry] = field(default_factory=dict)
    _locks: dict[uuid.UUID, asyncio.Lock] = field(default_factory=dict)
    _tried: dict[uuid.UUID, float] = field(default_factory=dict)

    async def keyring(
        self, idp_id: uuid.UUID, updated_at: datetime | None, uri: str, *, kid: object
    ) -> Keyring:
        """The registration's keys; fetched when absent, stale, or lacking `kid` (a rotation at the IdP),
        at most once per jwks_refresh_min_seconds whatever tokens arrive. A failed fetch keeps the keys
        already held (an IdP outage does not sign everyone out; withdrawing at once is a PATCH here)."""
        key, s = (idp_id, updated_at), self.settings
        async with self._locks.setdefault(idp_id, asyncio.Lock()):  # one fetch per IdP, not one per request
            entry, now = self._entries.get(key), time.monotonic()
            due = entry is None or now - entry.fetched_at > s.jwks_cache_seconds or not entry.keyring.has(kid)
            if due and now - self._tried.get(idp_id, -math.inf) >= s.jwks_refresh_min_seconds:
                self._tried[idp_id] = now
                try:
                    jwks = await fetch_jwks(
                        uri, timeout=s.jwks_fetch_timeout, allow_private=s.jwks_allow_private_addresses
                    )
                    entry = _Entry(Keyring(validate_jwks(jwks)), now)
                    self._drop(idp_id)
                    self._entries[key] = entry
                except JwksUnavailable as exc:
                    log.warning("identity provider %s: %s", idp_id, exc)
            if entry is None:
                raise JwksUnavailable("no keys for this identity provider")
            return entry.keyring

    def _drop(self, idp_id: uuid.UUID) -> None:
        for key in [k for k in self._entries if k[0] == idp_id]:
            del self._entries[key]
