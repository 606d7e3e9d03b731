"""An identity provider's lifecycle: jwks_uri (cached, refreshed on an unknown kid, fetched with a
guard against internal addresses), update, rotation, disable, delete, sign-out and a capped lifetime.

The JWKS is served by a small HTTP server of this module on loopback, allowed by
jwks_allow_private_addresses; the guard itself is tested with that setting off."""

import asyncio
import json
import time

import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa

from auth.jwks_fetch import JwksUnavailable, fetch_jwks
from tests.auth.test_identity_providers import (
    AUDIENCE,
    ISSUER,
    SUBJECT,
    assert_refused,
    idp_token,
    link,
    me,
    public_jwk,
    register,
)
from tests.live import EventClient, live_world

LOOPBACK = {"jwks_allow_private_addresses": True, "jwks_refresh_min_seconds": 0, "jwks_fetch_timeout": 1.0}


@pytest.fixture
def settings_overrides() -> dict:
    return LOOPBACK


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def linked_idp(world, idp_key) -> str:
    """Org A trusts ISSUER with inline keys and maps SUBJECT to a-clinician."""
    resp = await register(world, idp_key)
    assert resp.status_code == 201, resp.text
    assert (await link(world, resp.json()["id"], "a-clinician")).status_code == 201
    return resp.json()["id"]


class JwksServer:
    """GET /jwks answers `keys`; /redirect, /slow, /big and /404 misbehave; `hits` counts /jwks."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.hits = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = (await reader.readuntil(b"\r\n\r\n")).split(b" ", 2)[1].decode()
        status, headers, body = "200 OK", "", b""
        if path == "/jwks":
            self.hits += 1
            body = json.dumps({"keys": self.keys}).encode()
        elif path == "/redirect":
            status, headers = "302 Found", f"location: {self.url}/jwks\r\n"
        elif path == "/slow":
            await asyncio.sleep(10)
        elif path == "/big":
            body = json.dumps({"keys": self.keys, "pad": "x" * 100_000}).encode()
        else:
            status = "404 Not Found"
        head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        writer.write(f"{head}{headers}connection: close\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()


@pytest.fixture
async def jwks_server():
    served = JwksServer()
    served.server = await asyncio.start_server(served.handle, "127.0.0.1", 0)
    yield served
    served.server.close()


async def register_uri(world, uri: str, *, org: str = "A"):
    return await world.client.post(
        f"/api/v1/orgs/{world.orgs[org]}/identity-providers",
        headers=await world.headers(f"{org.lower()}-org_admin"),
        json={"issuer": ISSUER, "audience": AUDIENCE, "jwks_uri": uri},
    )


@pytest.fixture
async def uri_idp(world, jwks_server, idp_key) -> str:
    jwks_server.keys = [public_jwk(idp_key)]
    resp = await register_uri(world, f"{jwks_server.url}/jwks")
    assert resp.status_code == 201, resp.text
    assert resp.json()["jwks_uri"] == f"{jwks_server.url}/jwks"
    assert (await link(world, resp.json()["id"], "a-clinician")).status_code == 201
    return resp.json()["id"]


def idp_url(world, idp_id: str) -> str:
    return f"/api/v1/orgs/{world.orgs['A']}/identity-providers/{idp_id}"


# --- jwks_uri ----------------------------------------------------------------------------------------------


async def test_keys_from_jwks_uri_are_cached(world, jwks_server, idp_key, uri_idp):
    hits = jwks_server.hits  # the registration's own check fetched once
    for _ in range(3):
        resp = await me(world, idp_token(idp_key))
        assert resp.status_code == 200 and resp.json()["username"] == "a-clinician", resp.text
    assert jwks_server.hits == hits + 1


async def test_rotation_at_the_idp_is_picked_up_on_an_unknown_kid(
    world, jwks_server, idp_key, other_key, uri_idp
):
    assert (await me(world, idp_token(idp_key))).status_code == 200
    jwks_server.keys = [public_jwk(other_key, kid="idp-key-2")]  # the IdP rotates and withdraws key 1
    resp = await me(world, idp_token(other_key, kid="idp-key-2"))
    assert resp.status_code == 200, resp.text
    await assert_refused(world, idp_token(idp_key))  # the refetch replaced the cached keys
    await assert_refused(world, idp_token(other_key, kid="never-published"))


@pytest.mark.parametrize("path", ["/redirect", "/slow", "/big", "/404"])
async def test_a_misbehaving_jwks_uri_is_refused_at_registration(world, jwks_server, idp_key, path):
    jwks_server.keys = [public_jwk(idp_key)]
    started = time.monotonic()
    resp = await register_uri(world, f"{jwks_server.url}{path}")
    assert resp.status_code == 422 and resp.json()["code"] == "invalid_input", resp.text
    # jwks_fetch_timeout is 1 s here: the refusal comes well before the 10 s /slow takes to answer
    assert time.monotonic() - started < 6


@pytest.mark.parametrize("settings_overrides", [{}])  # the default: internal addresses refused
@pytest.mark.parametrize(
    "uri",
    [
        "https://127.0.0.1/jwks",
        "https://localhost/jwks",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.8/jwks",
        "https://[::1]/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "https://0.0.0.0/jwks",
        "http://idp.example/jwks",  # plain http
        "https://user:pw@idp.example/jwks",
        "file:///etc/passwd",
        "gopher://idp.example/",
    ],
)
async def test_internal_or_odd_addresses_are_refused_by_default(world, uri, settings_overrides):
    resp = await register_uri(world, uri)
    assert resp.status_code == 422 and resp.json()["code"] == "invalid_input", resp.text
    # Refused for what the address is, before any connection (not because nothing listens there).
    assert "not allowed" in resp.json()["detail"] or "must be an https URL" in resp.json()["detail"], (
        resp.text
    )


async def test_the_guard_refuses_loopback_even_where_a_jwks_answers(jwks_server, idp_key):
    jwks_server.keys = [public_jwk(idp_key)]
    with pytest.raises(JwksUnavailable):  # http and loopback, with the guard on
        await fetch_jwks(f"{jwks_server.url}/jwks", timeout=1, allow_private=False)
    assert (await fetch_jwks(f"{jwks_server.url}/jwks", timeout=1, allow_private=True))["keys"]


# --- update, disable, delete -------------------------------------------------------------------------------------


async def test_patching_inline_keys_rotates_at_once(world, idp_key, other_key, linked_idp):
    admin = await world.headers("a-org_admin")
    new = {"keys": [public_jwk(other_key, kid="idp-key-2")]}
    resp = await world.client.patch(idp_url(world, linked_idp), json={"jwks": new}, headers=admin)
    assert resp.status_code == 200, resp.text
    await assert_refused(world, idp_token(idp_key))
    assert (await me(world, idp_token(other_key, kid="idp-key-2"))).status_code == 200


async def test_patching_from_uri_to_inline_and_the_audience(world, idp_key, uri_idp):
    admin = await world.headers("a-org_admin")
    body = {"jwks": {"keys": [public_jwk(idp_key)]}, "audience": "liaison-org-a-v2"}
    resp = await world.client.patch(idp_url(world, uri_idp), json=body, headers=admin)
    assert resp.status_code == 200 and resp.json()["jwks_uri"] is None, resp.text
    await assert_refused(world, idp_token(idp_key))  # the old audience
    assert (await me(world, idp_token(idp_key, aud="liaison-org-a-v2"))).status_code == 200


async def test_disable_and_enable(world, idp_key, linked_idp):
    admin = await world.headers("a-org_admin")
    resp = await world.client.patch(idp_url(world, linked_idp), json={"is_active": False}, headers=admin)
    assert resp.status_code == 200 and resp.json()["is_active"] is False
    await assert_refused(world, idp_token(idp_key))
    resp = await world.client.patch(idp_url(world, linked_idp), json={"is_active": "yes"}, headers=admin)
    assert resp.status_code == 422  # strict: no "yes" for true
    await world.client.patch(idp_url(world, linked_idp), json={"is_active": True}, headers=admin)
    assert (await me(world, idp_token(idp_key))).status_code == 200


async def test_delete_refuses_its_tokens_and_frees_the_issuer(world, idp_key, linked_idp):
    admin = await world.headers("a-org_admin")
    resp = await world.client.delete(idp_url(world, linked_idp), headers=admin)
    assert resp.status_code == 204, resp.text
    await assert_refused(world, idp_token(idp_key))
    assert (await world.client.patch(idp_url(world, linked_idp), json={}, headers=admin)).status_code == 404
    assert (await register(world, idp_key)).status_code == 201  # re-registering is no longer a 409


@pytest.mark.parametrize("who, status", [("b-org_admin", 404), ("a-coordinator", 403)])
async def test_only_the_orgs_admin_updates_or_deletes(world, idp_key, linked_idp, who, status):
    headers = await world.headers(who)
    for method, body in (("PATCH", {"is_active": False}), ("DELETE", None)):
        resp = await world.client.request(method, idp_url(world, linked_idp), json=body, headers=headers)
        assert resp.status_code == status, resp.text
    assert (await me(world, idp_token(idp_key))).status_code == 200


# --- sign-out and lifetime ---------------------------------------------------------------------------------------


async def test_sign_out_revokes_the_idp_token(world, idp_key, linked_idp):
    token = idp_token(idp_key)
    assert (await me(world, token)).status_code == 200
    resp = await world.client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 204, resp.text
    await assert_refused(world, token)
    assert (await me(world, idp_token(idp_key))).status_code == 200  # a new sign-in at the IdP is another


async def test_idp_token_lifetime_is_capped(world, idp_key, linked_idp):
    now = int(time.time())
    await assert_refused(world, idp_token(idp_key, exp=now + 10 * 365 * 86400))
    await assert_refused(world, idp_token(idp_key, iat=now - 4000, exp=now + 60))  # older than the cap
    assert (await me(world, idp_token(idp_key, exp=now + 3000))).status_code == 200


# --- open sockets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["logout", "disable", "delete", "rotate"])
async def test_idp_socket_closes(env, idp_key, other_key, how):
    async with live_world(env) as (app, host, w):
        linked = (await register(w, idp_key)).json()["id"]
        assert (await link(w, linked, "a-coordinator", subject=SUBJECT)).status_code == 201
        token, admin = idp_token(idp_key), await w.headers("a-org_admin")
        async with EventClient.connect(host, token) as events:
            if how == "logout":
                done = await w.client.post(
                    "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
                )
            elif how == "delete":
                done = await w.client.delete(idp_url(w, linked), headers=admin)
            else:
                body = (
                    {"is_active": False} if how == "disable" else {"jwks": {"keys": [public_jwk(other_key)]}}
                )
                done = await w.client.patch(idp_url(w, linked), json=body, headers=admin)
            assert done.status_code in (200, 204), done.text
            reply = json.loads(await asyncio.wait_for(events.ws.recv(), 5))
            assert reply["type"] == "error" and reply["code"] == "session_ended", reply
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(events.ws.recv(), 5)
