"""What sign-in and token checks need, built once per app from the settings."""

from dataclasses import dataclass

from redis.asyncio import Redis

from api.settings import Settings
from auth.jwks_fetch import JwksCache
from auth.passwords import Passwords
from auth.ratelimit import FailureLimiter
from auth.signing import local_keys
from auth.tokens import Keyring, Signer


@dataclass(frozen=True)
class AuthContext:
    settings: Settings
    signer: Signer
    keyring: Keyring
    published: dict  # our public keys, as /.well-known/jwks.json serves them
    passwords: Passwords
    limiter: FailureLimiter
    jwks: JwksCache


def build_auth_context(settings: Settings, redis: Redis | None) -> AuthContext:
    keys = local_keys(
        alg=settings.jwt_algorithm,
        secret=settings.jwt_secret,
        private_pem=settings.jwt_private_key,
        kid=settings.jwt_key_id,
        verify_pems=settings.jwt_verify_keys,
    )
    return AuthContext(
        settings=settings,
        signer=keys.signer,
        keyring=keys.keyring,
        published=keys.jwks,
        passwords=Passwords(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib),
        limiter=FailureLimiter(redis=redis, window=settings.login_window_seconds),
        jwks=JwksCache(settings),
    )
