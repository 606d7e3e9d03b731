"""Published keys: /.well-known/jwks.json verifies our tokens with an independent JWT library (PyJWT),
for RS256 and ES256, across a key rotation; RFC 8414 metadata names the token endpoint and the keys."""

import json
from contextlib import AsyncExitStack

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.settings import Settings
from auth.signing import local_keys
from liaison.app import create_app
from tests.conftest import make_settings, reset_env, seed_world

ISSUER, AUDIENCE = "liaison", "liaison-api"


def private_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def new_key(alg: str):
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def verify_with_pyjwt(token: str, jwks: dict) -> dict:
    """PyJWT, knowing nothing of Liaison but its JWKS, checks signature, kid, issuer and audience."""
    keys = pyjwt.PyJWKSet.from_dict(jwks)
    kid = pyjwt.get_unverified_header(token)["kid"]
    key = next((k for k in keys.keys if k.key_id == kid), None)
    if key is None:
        raise pyjwt.InvalidKeyError(f"kid {kid!r} is not in the JWKS")
    return pyjwt.decode(token, key.key, algorithms=[key.algorithm_name], audience=AUDIENCE, issuer=ISSUER)


@pytest.fixture
async def nodes(env):
    """Start apps with given key settings on the test's databases: await nodes(**settings)."""
    await reset_env(env)
    async with AsyncExitStack() as stack:

        async def start(**overrides):
            app = create_app(make_settings(env["database_url"], env["redis_url"], **overrides))
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://liaison.test")
            )
            return app, http

        yield start


async def me(http, token: str) -> int:
    return (await http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).status_code


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_a_token_verifies_with_pyjwt_against_the_served_jwks(nodes, alg):
    key = new_key(alg)
    app, http = await nodes(jwt_algorithm=alg, jwt_private_key=private_pem(key), jwt_key_id="k-2026-1")
    world = await seed_world(app, http)
    token = await world.token("a-clinician")
    resp = await http.get("/.well-known/jwks.json")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/jwk-set+json")
    jwks = resp.json()
    assert [(k["kid"], k["alg"], k["use"]) for k in jwks["keys"]] == [("k-2026-1", alg, "sig")]
    assert not any("d" in k or "k" in k for k in jwks["keys"])  # public halves only
    claims = verify_with_pyjwt(token, jwks)
    assert claims["sub"] == str(world.users["a-clinician"]) and claims["typ"] == "access"


@pytest.mark.parametrize(("old_alg", "new_alg"), [("RS256", "RS256"), ("ES256", "ES256"), ("RS256", "ES256")])
async def test_after_rotation_old_and_new_tokens_both_verify(nodes, old_alg, new_alg):
    old, new = new_key(old_alg), new_key(new_alg)
    app, http = await nodes(jwt_algorithm=old_alg, jwt_private_key=private_pem(old), jwt_key_id="old")
    world = await seed_world(app, http)
    before = await world.token("a-clinician")
    # The rotated node (another process in production; here another app on the same database).
    _, rotated = await nodes(
        jwt_algorithm=new_alg,
        jwt_private_key=private_pem(new),
        jwt_key_id="new",
        jwt_verify_keys={"old": public_pem(old)},
    )
    login = await rotated.post(
        "/api/v1/auth/login", json={"username": "a-clinician", "password": "test-password-1"}
    )
    after = login.json()["access_token"]
    assert pyjwt.get_unverified_header(after)["kid"] == "new"
    jwks = (await rotated.get("/.well-known/jwks.json")).json()
    assert {(k["kid"], k["alg"]) for k in jwks["keys"]} == {("old", old_alg), ("new", new_alg)}
    for token in (before, after):
        verify_with_pyjwt(token, jwks)
        assert await me(rotated, token) == 200
    # The old node, which does not know the new key, refuses what the new one signed.
    assert await me(http, after) == 401
    # The refresh token made before rotation still refreshes (and comes back signed with the new key).
    refreshed = await rotated.post(
        "/api/v1/auth/refresh", json={"refresh_token": (await world.login("a-clinician"))["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert pyjwt.get_unverified_header(refreshed.json()["access_token"])["kid"] == "new"


async def test_a_token_with_an_unknown_kid_is_refused(nodes):
    key, stranger = new_key("RS256"), new_key("RS256")
    app, http = await nodes(jwt_algorithm="RS256", jwt_private_key=private_pem(key), jwt_key_id="mine")
    world = await seed_world(app, http)
    claims = pyjwt.decode(await world.token("a-clinician"), options={"verify_signature": False})
    jwks = (await http.get("/.well-known/jwks.json")).json()
    for kid, signer in (("unknown", stranger), ("unknown", key)):
        forged = pyjwt.encode(claims, private_pem(signer), algorithm="RS256", headers={"kid": kid})
        assert await me(http, forged) == 401
        with pytest.raises(pyjwt.InvalidKeyError):
            verify_with_pyjwt(forged, jwks)
    # The right kid but another key's signature: refused too (by us and by PyJWT).
    forged = pyjwt.encode(claims, private_pem(stranger), algorithm="RS256", headers={"kid": "mine"})
    assert await me(http, forged) == 401
    with pytest.raises(pyjwt.InvalidSignatureError):
        verify_with_pyjwt(forged, jwks)


async def test_hmac_publishes_no_key(client):
    resp = await client.get("/.well-known/jwks.json")
    assert resp.status_code == 200 and resp.json() == {"keys": []}


async def test_authorization_server_metadata(nodes):
    _, http = await nodes()
    meta = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"] == "http://liaison.test/api/v1/auth/token"
    assert meta["jwks_uri"] == "http://liaison.test/.well-known/jwks.json"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert "consults:create" in meta["scopes_supported"] and "users:manage" not in meta["scopes_supported"]
    _, pinned = await nodes(public_url="https://liaison.example.org/")
    meta = (await pinned.get("/.well-known/oauth-authorization-server")).json()
    assert meta["jwks_uri"] == "https://liaison.example.org/.well-known/jwks.json"
    # What it names works: the token endpoint answers a client-credentials grant's refusal in OAuth form.
    refused = await pinned.post("/api/v1/auth/token", data={"grant_type": "client_credentials"})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("verify", "message"),
    [
        ({"liaison-1": "whatever"}, "the signing key's"),
        ({"x": "not a pem"}, "not a PEM key"),
        ({"x": public_pem(ec.generate_private_key(ec.SECP384R1()))}, "neither RSA"),
        ({"x": public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))}, "neither RSA"),
        ({"": public_pem(ec.generate_private_key(ec.SECP256R1()))}, "1 to 200"),
    ],
)
def test_unusable_verify_keys_are_refused_at_start(verify, message):
    key = private_pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError, match=message):
        local_keys(alg="ES256", secret="", private_pem=key, kid="liaison-1", verify_pems=verify)


def test_a_private_verify_key_publishes_only_its_public_half():
    signing, previous = new_key("ES256"), new_key("RS256")
    keys = local_keys(
        alg="ES256",
        secret="",
        private_pem=private_pem(signing),
        kid="now",
        verify_pems={"before": private_pem(previous)},
    )
    assert {k["kid"] for k in keys.jwks["keys"]} == {"now", "before"}
    assert not any(set(k) & {"d", "p", "q", "dp", "dq", "qi"} for k in keys.jwks["keys"])


def test_verify_keys_come_from_the_environment_as_json(monkeypatch):
    pem = public_pem(new_key("ES256"))
    monkeypatch.setenv("LIAISON_JWT_VERIFY_KEYS", json.dumps({"before": pem}))
    assert Settings().jwt_verify_keys == {"before": pem}
