"""Call tokens: short-lived, single-use JWTs bound to one user, one org and one room."""

import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from auth.context import AuthContext
from auth.tokens import InvalidToken, new_jti, verify
from signaling.messages import ProtocolError


@dataclass(frozen=True, slots=True)
class CallGrant:
    user_id: str
    org_id: str
    room: str
    consult_id: str | None  # None for a pre-call echo room
    jti: str
    exp: int


def issue(ctx: AuthContext, *, user_id: uuid.UUID, org_id: uuid.UUID, room: str,
          consult_id: uuid.UUID | None) -> tuple[str, int]:
    """A signed call token and its expiry (epoch seconds)."""
    s, now = ctx.settings, int(time.time())
    exp = now + s.call_token_ttl
    claims = {"iss": s.jwt_issuer, "aud": s.signaling_audience, "sub": str(user_id), "org": str(org_id), "room": room,
              "cid": str(consult_id) if consult_id else None, "iat": now, "nbf": now, "exp": exp, "jti": new_jti(),
              "typ": "call"}
    return ctx.signer.sign(claims), exp


def check(ctx: AuthContext, token: str) -> CallGrant:
    """Signature, audience, expiry and type; single use is checked separately (UsedTokens)."""
    s = ctx.settings
    try:
        c = verify(token, ctx.keyring, audience=s.signaling_audience, issuer=s.jwt_issuer, typ="call", leeway=s.clock_leeway)
    except InvalidToken:
        raise ProtocolError("invalid_token", "The call token is invalid or expired") from None
    if not isinstance(c.get("room"), str) or not isinstance(c.get("org"), str):
        raise ProtocolError("invalid_token", "The call token names no room")
    return CallGrant(c["sub"], c["org"], c["room"], c.get("cid"), c["jti"], int(c["exp"]))


class UsedTokens:
    """Remembers spent call-token ids until they expire: in Redis across nodes, else in memory."""

    def __init__(self, redis: Redis | None) -> None:
        self._redis = redis
        self._local: dict[str, int] = {}

    async def spend(self, grant: CallGrant) -> None:
        ttl = max(1, grant.exp - int(time.time()) + 60)
        if self._redis is not None:
            fresh = await self._redis.set(f"liaison:calltoken:{grant.jti}", b"1", nx=True, ex=ttl)
        else:
            now = time.time()
            self._local = {k: v for k, v in self._local.items() if v > now} if len(self._local) > 10_000 else self._local
            fresh = grant.jti not in self._local
            self._local[grant.jti] = int(now) + ttl
        if not fresh:
            raise ProtocolError("token_used", "This call token was already used; ask for a new one")
