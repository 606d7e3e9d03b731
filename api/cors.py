"""CORS for the REST API from an allowlist (LIAISON_CORS_ORIGINS); off when the list is empty."""

import re

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

# What a browser client sends besides the CORS-safelisted headers, and what it may read back.
ALLOW_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"]
EXPOSE_HEADERS = ["X-Request-Id", "Retry-After", "Idempotent-Replayed", "Location"]
ALLOW_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# A browser's Origin header: scheme, host, optional port, nothing after. "https://app.example/"
# (a trailing slash) would never match one, so such an entry is refused at start instead.
ORIGIN = re.compile(r"^https?://[^/\s?#]+$")


def install_cors(app: FastAPI, *, origins: list[str], max_age: int) -> None:
    """Answer preflights and mark responses for the allowed origins; nothing at all when none are.

    Credentials (cookies) are not allowed: Liaison's tokens travel in the Authorization header, so a
    browser never sends an ambient credential that another origin's page could ride on."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=ALLOW_METHODS,
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        allow_credentials=False,
        max_age=max_age,
    )
