"""Runtime settings, read once from LIAISON_* environment variables."""

from functools import lru_cache
from ipaddress import ip_network
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.cors import ORIGIN

DEV_SECRET = "dev-only-secret-change-me-dev-only-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIAISON_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./liaison.db"
    redis_url: str | None = None
    # PostgreSQL connections per process: pool_size kept, max_overflow more under bursts. The defaults
    # hold 2 nodes x 2 workers to 80, under PostgreSQL's default max_connections (100, 3 reserved).
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    # Past this wait for a pooled connection (about a hundred times a request's usual time) a request
    # answers 503 with Retry-After instead of queueing for SQLAlchemy's default 30 s.
    db_pool_timeout: float = Field(default=3.0, gt=0, le=60)
    db_connect_timeout: float = Field(default=3.0, gt=0, le=60)  # a new connection (TCP, auth, startup)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Proxies (addresses or CIDRs) whose X-Forwarded-* / Forwarded headers name the real client,
    # scheme and host (api/proxy.py); from any other peer those headers are ignored.
    trusted_proxies: list[str] = []
    # The origin clients reach this service at (https://host[:port]), as the proxy publishes it:
    # call tokens name wss://<that host>/api/v1/signaling unless LIAISON_SIGNALING_URL says otherwise,
    # and it is the base of the authorization-server metadata's URLs. Derived per request when unset.
    public_url: str | None = Field(default=None, pattern=r"^https?://[A-Za-z0-9.\[\]:-]+/?$")

    # Token signing: HS256 with a secret, or an asymmetric algorithm with a PEM private key.
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS256"
    jwt_secret: str = DEV_SECRET
    jwt_private_key: str | None = None
    jwt_key_id: str = Field(default="liaison-1", min_length=1, max_length=200)
    # Key rotation: more public keys (kid -> PEM) that verify tokens carrying their kid and are
    # published in /.well-known/jwks.json, but never sign: the keys before the current one, until
    # their tokens have expired, or the next one, published ahead of signing with it (README).
    jwt_verify_keys: dict[str, str] = {}
    jwt_issuer: str = "liaison"
    jwt_audience: str = "liaison-api"
    access_token_ttl: int = Field(default=900, ge=30, le=900)
    refresh_token_ttl: int = Field(default=14 * 24 * 3600, ge=60)
    clock_leeway: int = Field(default=5, ge=0, le=60)
    # After a client's secret is rotated the old one still works this long, so its deployments can move.
    client_secret_overlap_seconds: int = Field(default=3600, ge=0, le=7 * 86400)
    # Identity-provider tokens: refused past iat + this, whatever their exp says.
    idp_token_max_lifetime: int = Field(default=3600, ge=60, le=86400)
    # Fetching an IdP's jwks_uri: keys kept this long, refetched at most this often on an unknown kid,
    # within this timeout, never from a private, loopback or link-local address unless allowed (tests).
    jwks_cache_seconds: float = Field(default=300.0, ge=0, le=86400)
    jwks_refresh_min_seconds: float = Field(default=10.0, ge=0, le=3600)
    jwks_fetch_timeout: float = Field(default=3.0, gt=0, le=30)
    jwks_allow_private_addresses: bool = False

    # Webhooks (webhooks/): each node's worker feeds deliveries from the event log, woken by it and
    # polling every poll_seconds; a delivery is retried after base * 2^(n-1) seconds (jittered, capped
    # at retry_max_seconds) up to max_attempts times (the defaults span about six hours); an endpoint
    # that failed disable_after_failures times in a row, or kept failing for disable_after_hours, is
    # disabled. Never to a private, loopback or link-local address unless allowed (tests).
    webhooks_worker: bool = True
    webhooks_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    webhooks_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhooks_retry_base_seconds: float = Field(default=5.0, gt=0, le=3600)
    webhooks_retry_max_seconds: float = Field(default=3600.0, gt=0, le=86400)
    webhooks_max_attempts: int = Field(default=15, ge=1, le=100)
    webhooks_disable_after_failures: int = Field(default=50, ge=1)
    webhooks_disable_after_hours: float = Field(default=24.0, gt=0)
    # After a rotation the old secret signs too (a second `v1,` signature) this long.
    webhooks_secret_overlap_seconds: int = Field(default=86400, ge=0, le=7 * 86400)
    webhooks_allow_private_addresses: bool = False

    # argon2id cost; tests lower it so the suite stays fast.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536

    login_max_failures: int = 10
    login_max_failures_per_address: int = 50
    login_window_seconds: int = 300

    max_body_bytes: int = 1_048_576
    # Attachments (consults.attachments): where their bytes live ("auto": the local disk under
    # attachments_path with SQLite, PostgreSQL's chunk rows with PostgreSQL: bench/attachments.py),
    # the largest of each kind, the most pixels an image may decode to (a decompression bomb is
    # refused before it is decoded), and how long an unfinished upload is kept.
    attachments_store: Literal["auto", "disk", "database"] = "auto"
    attachments_path: str = "./attachments"
    attachments_photo_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    attachments_clip_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    attachments_document_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    attachments_opaque_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    attachments_max_pixels: int = Field(default=40_000_000, ge=10_000)
    attachments_upload_ttl_seconds: int = Field(default=24 * 3600, ge=10)
    # Browser origins allowed to call the REST API (CORS), exact match; empty: no CORS headers at all.
    cors_origins: list[str] = []
    cors_max_age: int = Field(default=600, ge=0, le=86400)
    escalation_worker: bool = True
    # Signaling: call tokens, ICE servers, and the limits of the WebSocket relay.
    signaling_audience: str = "liaison-signaling"
    signaling_url: str | None = None  # what call tokens name; derived from the request when unset
    # Serve signaling on its own port too (lighter: see signaling/edge/listener.py).
    signaling_port: int | None = Field(default=None, ge=1, le=65535)
    call_token_ttl: int = Field(default=300, ge=10, le=300)
    stun_urls: list[str] = []
    turn_urls: list[str] = []
    turn_secret: str | None = None
    turn_ttl: int = Field(default=3600, ge=60, le=86400)
    allowed_origins: list[str] = []  # exact match; a request without Origin (not a browser) passes
    signaling_max_peers: int = Field(default=6, ge=2, le=50)
    signaling_grace_seconds: float = Field(default=30.0, gt=0, le=600)
    signaling_buffer_messages: int = Field(default=256, ge=1, le=10_000)
    signaling_max_message_bytes: int = Field(default=65536, ge=1024, le=1_048_576)
    signaling_rate_per_second: float = Field(default=50.0, gt=0)
    signaling_rate_burst: int = Field(default=200, ge=1)
    signaling_connections_per_user: int = Field(default=4, ge=1)
    signaling_join_timeout: float = Field(default=5.0, gt=0)
    # Liveness is the WebSocket protocol's: a ping every interval, and a connection that has not
    # answered within the timeout is lost (its peer shown `reconnecting`). Browsers answer by themselves.
    signaling_ping_interval: float = Field(default=20.0, gt=0, le=600)
    signaling_ping_timeout: float = Field(default=20.0, gt=0, le=600)
    # Accepted so existing configurations load; a quiet call that answers pings is never closed.
    signaling_idle_timeout: float = Field(default=120.0, gt=0)
    # Call attendance is written this long after a join or departure, in one batch with any others.
    signaling_record_delay: float = Field(default=0.5, ge=0, le=10)
    # Scaled: how long a node's peers stay present in Redis without its heartbeat (every ttl/3);
    # a node that dies is noticed, and its peers announced gone, within about ttl + ttl/3.
    signaling_presence_ttl: float = Field(default=10.0, ge=0.3, le=300)
    # Each node reads the event log at least this often; Redis (when there is one) only wakes it sooner.
    events_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # Audit rows are appended unsealed and chained by each node's sealer this often.
    audit_seal_seconds: float = Field(default=1.0, gt=0, le=60)
    # Signed checkpoints of the chain head, kept outside the database (audit.checkpoints): the Ed25519
    # private key's PEM file (never in the database), and where they go: an append-only file and/or a
    # witness URL. One after each sealing round that sealed rows, at most once per checkpoint_seconds.
    audit_checkpoint_key_file: str | None = None
    audit_checkpoint_file: str | None = None
    audit_checkpoint_url: str | None = None
    audit_checkpoint_seconds: float = Field(default=0.0, ge=0, le=3600)
    escalation_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    admin_username: str | None = None
    admin_password: str | None = None
    admin_org_name: str = "Liaison Operations"

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"LIAISON_TRUSTED_PROXIES: {entry!r} is not an address or CIDR") from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, origins: list[str]) -> list[str]:
        bad = [o for o in origins if not ORIGIN.match(o)]
        if bad:
            raise ValueError(f"not an origin (scheme://host[:port], no path or trailing slash): {bad}")
        return origins

    @model_validator(mode="after")
    def _checkpoints_need_key_and_sink(self) -> "Settings":
        has_sink = bool(self.audit_checkpoint_file or self.audit_checkpoint_url)
        if bool(self.audit_checkpoint_key_file) != has_sink:
            raise ValueError(
                "audit checkpoints need both LIAISON_AUDIT_CHECKPOINT_KEY_FILE and a sink "
                "(LIAISON_AUDIT_CHECKPOINT_FILE or LIAISON_AUDIT_CHECKPOINT_URL)"
            )
        return self

    @model_validator(mode="after")
    def _refuse_weak_keys(self) -> "Settings":
        if self.environment == "development":
            return self
        if self.jwt_algorithm.startswith("HS"):
            if self.jwt_secret == DEV_SECRET or len(self.jwt_secret.encode()) < 32:
                raise ValueError("LIAISON_JWT_SECRET must be at least 32 bytes and not the default")
        elif not self.jwt_private_key:
            raise ValueError("LIAISON_JWT_PRIVATE_KEY is required for asymmetric algorithms")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
