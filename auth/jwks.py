"""Keyrings from an identity provider's JWKS: public asymmetric keys only, one algorithm each."""

import json
from functools import lru_cache

from jose import jwk
from jose.backends.base import Key
from jose.exceptions import JWKError

from auth.tokens import InvalidToken, Keyring, VerifyKey

ALLOWED = {"RSA": {"RS256", "RS384", "RS512"}, "EC": {"ES256", "ES384", "ES512"}}
DEFAULT_ALG = {"RSA": "RS256", "EC": "ES256"}


def validate_jwks(jwks: object) -> list[VerifyKey]:
    """Every key needs a kid and a public asymmetric kty; raise ValueError otherwise."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ValueError("a JWKS needs a non-empty 'keys' list")
    out = []
    for entry in keys:
        kty, kid = entry.get("kty"), entry.get("kid")
        if kty not in ALLOWED or not isinstance(kid, str) or not kid:
            raise ValueError("each key needs a kid and kty RSA or EC")
        if "d" in entry:
            raise ValueError("private key material is not accepted")
        alg = entry.get("alg", DEFAULT_ALG[kty])
        if alg not in ALLOWED[kty]:
            raise ValueError(f"algorithm {alg!r} does not fit kty {kty}")
        out.append(VerifyKey(kid, alg, _construct(entry, kid, kty, alg)))
    return out


def _construct(entry: dict, kid: str, kty: str, alg: str) -> Key:
    # python-jose raises JWKError (not a ValueError) for a key with missing members.
    try:
        return jwk.construct(entry, alg)
    except (JWKError, ValueError, TypeError):
        raise ValueError(f"key {kid!r} is not a usable {kty} public key") from None


def keyring_from_jwks(jwks: dict) -> Keyring:
    return _cached(json.dumps(jwks, sort_keys=True))


@lru_cache(maxsize=256)
def _cached(blob: str) -> Keyring:
    try:
        return Keyring(validate_jwks(json.loads(blob)))
    except Exception:
        raise InvalidToken("identity provider keys unusable") from None
