"""Call tokens: short-lived, single-use JWTs bound to one user, one org and one room."""

import time
import uuid

from auth.context import AuthContext
from auth.tokens import InvalidToken, new_jti, verify
from signaling.core.admission import CallGrant
from signaling.core.messages import ProtocolError


def issue(
    ctx: AuthContext,
    *,
    user_id: uuid.UUID,
    org_id: uuid.UUID,
    room: str,
    consult_id: uuid.UUID | None,
    session_id: uuid.UUID | None = None,
    not_after: int | None = None,
    role: str | None = None,
    name: str | None = None,
) -> tuple[str, int]:
    """A signed call token and its expiry (epoch seconds), at most `not_after` (an agreement's end)."""
    s, now = ctx.settings, int(time.time())
    exp = min(now + s.call_token_ttl, not_after) if not_after is not None else now + s.call_token_ttl
    claims = {
        "iss": s.jwt_issuer,
        "aud": s.signaling_audience,
        "sub": str(user_id),
        "org": str(org_id),
        "room": room,
        "cid": str(consult_id) if consult_id else None,
        "sid": str(session_id) if session_id else None,
        # How the other peers are told who this is: carried here so that joining reads no database.
        "role": role,
        "name": name,
        "iat": now,
        "nbf": now,
        "exp": exp,
        "jti": new_jti(),
        "typ": "call",
    }
    return ctx.signer.sign(claims), exp


def check(ctx: AuthContext, token: str) -> CallGrant:
    """Signature, audience, expiry and type; single use is the ledger's (signaling.fabric.ledger)."""
    s = ctx.settings
    try:
        c = verify(
            token,
            ctx.keyring,
            audience=s.signaling_audience,
            issuer=s.jwt_issuer,
            typ="call",
            leeway=s.clock_leeway,
        )
    except InvalidToken:
        raise ProtocolError("invalid_token", "The call token is invalid or expired") from None
    if not isinstance(c.get("room"), str) or not isinstance(c.get("org"), str):
        raise ProtocolError("invalid_token", "The call token names no room")
    sid, role, name = (c.get(k) if isinstance(c.get(k), str) else None for k in ("sid", "role", "name"))
    return CallGrant(
        c["sub"], c["org"], c["room"], c.get("cid"), c["jti"], int(c["iat"]), int(c["exp"]), sid, role, name
    )
