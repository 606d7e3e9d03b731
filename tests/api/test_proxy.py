"""Forwarded headers are believed from a trusted proxy only (api/proxy.py)."""

import httpx
import pytest
from pydantic import ValidationError

from api.proxy import TrustedProxies
from api.settings import Settings


async def echo(scope, receive, send):
    """What the app behind the middleware sees of the request."""
    host = dict(scope["headers"]).get(b"host", b"").decode()
    body = f"{scope['client'][0]} {scope['scheme']} {host}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def seen(peer: str, headers: dict[str, str], trusted=("127.0.0.1", "10.0.0.0/8")) -> list[str]:
    transport = httpx.ASGITransport(app=TrustedProxies(echo, list(trusted)), client=(peer, 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://node:8000") as c:
        return (await c.get("/", headers=headers)).text.split(" ")


XFF = {
    "x-forwarded-for": "203.0.113.7",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "liaison.example.org",
}


async def test_trusted_peer_names_the_client_scheme_and_host():
    assert await seen("127.0.0.1", XFF) == ["203.0.113.7", "https", "liaison.example.org"]


async def test_untrusted_peer_is_not_believed():
    assert await seen("198.51.100.9", XFF) == ["198.51.100.9", "http", "node:8000"]


async def test_nothing_is_trusted_by_default():
    assert await seen("127.0.0.1", XFF, trusted=()) == ["127.0.0.1", "http", "node:8000"]


async def test_a_chain_is_walked_past_trusted_proxies_only():
    # The client wrote the first entry itself; only the hop our proxies saw counts.
    headers = {"x-forwarded-for": "6.6.6.6, 203.0.113.7, 10.1.2.3"}
    assert (await seen("127.0.0.1", headers))[0] == "203.0.113.7"


async def test_a_websocket_behind_tls_is_wss():
    seen_scope: dict = {}

    async def app(scope, receive, send):
        seen_scope.update(scope)

    scope = {
        "type": "websocket",
        "scheme": "ws",
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"host", b"node:8000"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-for", b"192.0.2.9"),
        ],
    }
    await TrustedProxies(app, ["127.0.0.1"])(scope, None, None)
    assert (seen_scope["scheme"], seen_scope["client"][0]) == ("wss", "192.0.2.9")


async def test_rfc7239_forwarded():
    headers = {"forwarded": 'for="[2001:db8::5]:4711";proto=https;host=liaison.example.org'}
    assert await seen("10.9.9.9", headers) == ["2001:db8::5", "https", "liaison.example.org"]


@pytest.mark.parametrize(
    "headers",
    [
        {"x-forwarded-for": "not-an-address", "x-forwarded-proto": "gopher", "x-forwarded-host": "a b/c"},
        {"x-forwarded-for": "", "x-forwarded-host": "x" * 300},
        {"forwarded": "for=unknown;proto=ftp"},
        {"x-forwarded-for": "1.2.3.4\x7f", "x-forwarded-host": "evil.example/path"},
    ],
)
async def test_junk_headers_leave_the_peer_as_it_is(headers):
    assert await seen("127.0.0.1", headers) == ["127.0.0.1", "http", "node:8000"]


def test_settings_refuse_a_bad_proxy_entry_and_public_url():
    assert Settings(trusted_proxies=["127.0.0.1", "10.0.0.0/8", "::1"]).trusted_proxies
    with pytest.raises(ValidationError, match="LIAISON_TRUSTED_PROXIES"):
        Settings(trusted_proxies=["10.0.0.0/33"])
    with pytest.raises(ValidationError):
        Settings(public_url="wss://liaison.example.org/api")


async def test_audit_and_login_limit_use_the_forwarded_address(env):
    from tests.conftest import make_settings, reset_env, seed_world

    await reset_env(env)
    settings = make_settings(
        env["database_url"], env["redis_url"], trusted_proxies=["127.0.0.1"], login_max_failures_per_address=2
    )
    from liaison.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison.test") as c:
            await seed_world(app, c)
            bad = {"username": "a-clinician", "password": "wrong-password-1"}
            for _ in range(2):
                r = await c.post("/api/v1/auth/login", json=bad, headers={"x-forwarded-for": "192.0.2.1"})
                assert r.status_code == 401
            r = await c.post("/api/v1/auth/login", json=bad, headers={"x-forwarded-for": "192.0.2.1"})
            assert r.status_code == 429
            r = await c.post("/api/v1/auth/login", json=bad, headers={"x-forwarded-for": "192.0.2.2"})
            assert r.status_code == 401
