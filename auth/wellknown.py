"""What Liaison publishes about its tokens: its public keys (RFC 7517) and its authorization-server
metadata (RFC 8414). No ID tokens are issued, so there is no OpenID Connect discovery document."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from auth.context import AuthContext
from auth.dependencies import auth_context
from auth.roles import CLIENT_SCOPES

router = APIRouter(tags=["operations"])
# Long enough to spare the relying parties' fetches, short against a rotation (README: publish a new
# key at least this long before signing with it).
CACHE = {"Cache-Control": "public, max-age=300"}


@router.get(
    "/.well-known/jwks.json",
    operation_id="getJwks",
    responses={200: {"content": {"application/jwk-set+json": {"schema": {"type": "object"}}}}},
)
async def jwks(ctx: AuthContext = Depends(auth_context)) -> JSONResponse:
    """The public keys that verify Liaison's tokens, by kid (none while it signs with HMAC)."""
    return JSONResponse(ctx.published, headers=CACHE, media_type="application/jwk-set+json")


@router.get("/.well-known/oauth-authorization-server", operation_id="getAuthorizationServerMetadata")
async def metadata(request: Request, ctx: AuthContext = Depends(auth_context)) -> JSONResponse:
    """RFC 8414 authorization-server metadata: the token endpoint, the keys, the grants and scopes."""
    base = (ctx.settings.public_url or str(request.base_url)).rstrip("/")
    body = {
        "issuer": ctx.settings.jwt_issuer,
        "token_endpoint": f"{base}/api/v1/auth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": sorted(CLIENT_SCOPES),
        "response_types_supported": [],  # no authorization endpoint: clients use the token endpoint only
        "service_documentation": f"{base}/docs",
    }
    return JSONResponse(body, headers=CACHE)
