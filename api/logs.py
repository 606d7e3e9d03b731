"""Log hygiene: no query string and no token-like string ever reaches a log line.

Call tokens and access tokens are bearer secrets; a log reader holding one could join a call or act as
its owner until it expires (issue #12). Clients are told never to put them in URLs, and the sockets
refuse such handshakes (api.middleware.QueryTokenGuard), but a log line is written before or regardless
of that refusal, so the log itself drops what could be a secret."""

import logging
import re
from typing import Any
from urllib.parse import parse_qsl

# Three base64url segments, the first a JSON header ("eyJ" is base64 of '{"'): a JWS compact token.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*")
TOKEN_PARAMS = frozenset(
    {"token", "access_token", "id_token", "refresh_token", "call_token", "jwt", "bearer", "auth"}
    | {"authorization", "session", "secret", "key", "api_key", "apikey", "code"}
)
_QUERY = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")


def token_in_query(query: str) -> bool:
    """Does a query string carry something that looks like a credential (by its name or its shape)?"""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower().replace("-", "_") in TOKEN_PARAMS or JWT.search(value) or JWT.search(name):
            return True
    return bool(JWT.search(query))


def scrub(text: str) -> str:
    """The text with query strings cut from URL paths and JWT-shaped strings replaced."""
    return JWT.sub("[redacted]", _QUERY.sub(r"\1?[redacted]", text))


class RedactFilter(logging.Filter):
    """Rewrites each record's message through `scrub` (attach it to handlers: it then sees records
    propagated from every logger, uvicorn's access and error loggers included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging config with the filter on each of its handlers."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": RedactFilter}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    return config


def redact_root() -> None:
    """Put the filter on the root logger's handlers (ours, websockets', SQLAlchemy's lines)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(RedactFilter())
