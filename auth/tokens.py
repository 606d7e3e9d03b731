"""JWT issue and verification on top of python-jose, with its permissive defaults closed."""

import hashlib
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from jose import jwk, jwt
from jose.backends.base import Key

log = logging.getLogger("liaison.tokens")

MAX_TOKEN_LENGTH = 8192
REFUSED_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
REQUIRED = ("exp", "iat", "iss", "aud", "sub", "jti")


class InvalidToken(Exception):
    """Any reason a token is refused; the caller turns it into a 401."""


@dataclass(frozen=True)
class VerifyKey:
    kid: str
    alg: str
    key: Key


class Keyring:
    """Keys indexed by exact `kid`; a kid is never used as a path, query or URL."""

    def __init__(self, keys: list[VerifyKey]) -> None:
        self._keys = {k.kid: k for k in keys}

    def has(self, kid: Any) -> bool:
        return isinstance(kid, str) and kid in self._keys

    def find(self, kid: Any) -> VerifyKey:
        if not isinstance(kid, str) or kid not in self._keys:
            raise InvalidToken("unknown key id")
        return self._keys[kid]


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:16]


def new_jti() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Signer:
    kid: str
    alg: str
    key: Key

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})


def build_local_keys(*, alg: str, secret: str, private_pem: str | None, kid: str) -> tuple[Signer, Keyring]:
    """Our own signing key and the keyring that verifies it: one algorithm per key."""
    if alg.startswith("HS"):
        key = jwk.construct(secret.encode(), alg)
        return Signer(kid, alg, key), Keyring([VerifyKey(kid, alg, key)])
    if private_pem is None:
        raise ValueError(f"{alg} signs with a private key: none was given")
    private = jwk.construct(private_pem, alg)
    return Signer(kid, alg, private), Keyring([VerifyKey(kid, alg, private.public_key())])


def verify(
    token: Any,
    keyring: Keyring,
    *,
    audience: str,
    issuer: str,
    typ: str | None,
    leeway: int,
    required: tuple[str, ...] = REQUIRED,
) -> dict[str, Any]:
    """Verify signature and claims; every failure, whatever its cause, is InvalidToken."""
    try:
        return _verify(
            token, keyring, audience=audience, issuer=issuer, typ=typ, leeway=leeway, required=required
        )
    except InvalidToken as exc:
        _log_refusal(token, str(exc))
        raise
    except Exception as exc:  # python-jose raises more than JWTError (OverflowError, TypeError…)
        _log_refusal(token, type(exc).__name__)
        raise InvalidToken("invalid token") from None


def _verify(
    token: Any,
    keyring: Keyring,
    *,
    audience: str,
    issuer: str,
    typ: str | None,
    leeway: int,
    required: tuple[str, ...],
) -> dict[str, Any]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("malformed token")
    header = jwt.get_unverified_header(token)
    if not isinstance(header, dict):
        raise InvalidToken("malformed token")
    refused = [h for h in REFUSED_HEADERS if h in header]
    if refused:
        raise InvalidToken(f"refused header {refused[0]}")
    key = keyring.find(header.get("kid"))
    if header.get("alg") != key.alg:
        raise InvalidToken("algorithm not allowed")
    options = {f"require_{c}": True for c in required} | {"leeway": leeway}
    # The claims are checked once the signature holds: python-jose lets through what it can't compare
    # (an `exp` of NaN), and reading them unverified first would parse the token once more per request.
    verified = jwt.decode(
        token, key.key, algorithms=[key.alg], audience=audience, issuer=issuer, options=options
    )
    if not isinstance(verified, dict):
        raise InvalidToken("malformed token")
    _check_numeric_claims(verified, leeway)
    if typ is not None and verified.get("typ") != typ:
        raise InvalidToken("wrong token type")
    return verified


def _check_numeric_claims(claims: dict[str, Any], leeway: int) -> None:
    for name in ("exp", "iat", "nbf"):
        if name in claims:
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidToken(f"claim {name} is not a number")
    if "iat" in claims and claims["iat"] > time.time() + leeway:
        raise InvalidToken("issued in the future")


def within_lifetime(claims: dict[str, Any], ttl: int, leeway: int) -> None:
    """Refuse a token older than `ttl` since its `iat`, whatever its `exp` says: a key that leaked, or
    an issuer that is careless, cannot make a token that lasts."""
    if time.time() > claims["iat"] + ttl + leeway:
        raise InvalidToken("token older than its allowed lifetime")


def _log_refusal(token: Any, reason: str) -> None:
    fp = token_fingerprint(token) if isinstance(token, str) else "non-string"
    log.info("token refused: %s (sha256:%s)", reason, fp)
