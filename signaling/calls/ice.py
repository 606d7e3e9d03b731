"""ICE servers for a client: STUN from settings, TURN with coturn `use-auth-secret` credentials."""

import base64
import hashlib
import hmac

from api.settings import Settings


def turn_credentials(secret: str, user_id: str, expires_at: int) -> tuple[str, str]:
    """TURN REST API form: username "<expiry>:<user>", credential base64(HMAC-SHA1(secret, username))."""
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(settings: Settings, user_id: str, now: int) -> list[dict]:
    """Nothing configured means an empty list: no public STUN server is ever assumed."""
    servers: list[dict] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret:
        username, credential = turn_credentials(settings.turn_secret, user_id, now + settings.turn_ttl)
        servers.append({"urls": list(settings.turn_urls), "username": username, "credential": credential})
    return servers


def ice_warnings(settings: Settings) -> list[str]:
    """What a start-up should say about ICE: TURN half configured, or no ICE server outside development."""
    found = []
    if settings.turn_secret and not settings.turn_urls:
        found.append("LIAISON_TURN_SECRET is set without LIAISON_TURN_URLS: call tokens offer no TURN server")
    if settings.turn_urls and not settings.turn_secret:
        found.append("LIAISON_TURN_URLS is set without LIAISON_TURN_SECRET: call tokens offer no TURN server")
    if settings.environment != "development" and not ice_servers(settings, "-", 0):
        found.append(
            "no ICE servers are configured (LIAISON_STUN_URLS, LIAISON_TURN_URLS + LIAISON_TURN_SECRET): "
            "calls between networks that NAT or firewall will not connect"
        )
    return found
