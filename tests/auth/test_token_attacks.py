"""Forged, tampered and replayed tokens: each one a 401 `invalid_token`, never a 500, never logged raw.

Every attack starts from a baseline token that is signed here, by hand, with the server's key and
proven to be accepted; each attack then changes exactly one thing, so that loosening any single
check makes its test fail.
"""

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from auth.tokens import token_fingerprint
from tests.conftest import TEST_SECRET

KID = "liaison-1"
ME = "/api/v1/me"


# --- building tokens ---------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, payload: str, key: bytes | None, digest=hashlib.sha256) -> str:
    """A JWS built without python-jose: HMAC over header.payload, or an empty signature if key is None."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(payload.encode())}"
    signature = "" if key is None else b64url(hmac.new(key, signing_input.encode(), digest).digest())
    return f"{signing_input}.{signature}"


def sign(claims: dict, *, alg: str = "HS256", key=TEST_SECRET, headers: dict | None = None) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": KID} | (headers or {}))


async def baseline_claims(world, username: str = "a-clinician", org: str = "A") -> dict:
    """Claims of a valid local access token for a real, open sign-in session of `username`."""
    issued = jwt.get_unverified_claims((await world.login(username))["access_token"])
    now = int(time.time())
    return {
        "iss": "liaison",
        "aud": "liaison-api",
        "sub": str(world.users[username]),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "typ": "access",
        "org": str(world.orgs[org]),
        "sid": issued["sid"],
    }


async def me(client, token: str):
    return await client.get(ME, headers={"Authorization": f"Bearer {token}"})


async def assert_refused(client, token: str) -> None:
    resp = await me(client, token)
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["code"] == "invalid_token" and body["status"] == 401
    assert resp.headers["www-authenticate"] == "Bearer"


@pytest.fixture
async def claims(world) -> dict:
    return await baseline_claims(world)


# --- the baseline ------------------------------------------------------------------------------


async def test_baseline_tokens_signed_here_are_accepted(world, claims):
    """Without this, every refusal below could be an artefact of a badly built token."""
    header = {"alg": "HS256", "typ": "JWT", "kid": KID}
    for token in (sign(claims), hand_made(header, json.dumps(claims), TEST_SECRET.encode())):
        resp = await me(world.client, token)
        assert resp.status_code == 200, resp.text
        assert resp.json()["id"] == claims["sub"] and resp.json()["username"] == "a-clinician"


# --- algorithms --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none_is_refused(world, claims, alg):
    token = hand_made({"alg": alg, "typ": "JWT", "kid": KID}, json.dumps(claims), None)
    assert token.endswith(".")
    await assert_refused(world.client, token)


async def test_alg_none_with_a_real_signature_attached_is_refused(world, claims):
    good = hand_made({"alg": "HS256", "typ": "JWT", "kid": KID}, json.dumps(claims), TEST_SECRET.encode())
    forged = (
        hand_made({"alg": "none", "typ": "JWT", "kid": KID}, json.dumps(claims), None)
        + good.rsplit(".", 1)[1]
    )
    await assert_refused(world.client, forged)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
async def test_other_hmac_algorithm_with_the_right_secret_is_refused(world, claims, alg):
    await assert_refused(world.client, sign(claims, alg=alg))


async def test_wrong_secret_is_refused(world, claims):
    await assert_refused(world.client, sign(claims, key=TEST_SECRET + "-not"))


async def test_tampered_payload_is_refused(world, claims):
    good = sign(claims)
    header, _, signature = good.split(".")
    other = claims | {"sub": str(world.users["a-org_admin"])}
    payload = b64url(json.dumps(other).encode())
    await assert_refused(world.client, f"{header}.{payload}.{signature}")


# --- required claims and their types -----------------------------------------------------------


@pytest.mark.parametrize("name", ["exp", "iat", "iss", "aud", "sub", "jti", "typ"])
async def test_missing_required_claim_is_refused(world, claims, name):
    await assert_refused(world.client, sign({k: v for k, v in claims.items() if k != name}))


@pytest.mark.parametrize("exp", ["string", "bool", "Infinity", "-Infinity", "NaN", "huge"])
async def test_exp_that_is_not_a_finite_number_is_refused(world, claims, exp):
    far = claims["exp"]
    values = {
        "string": str(far),
        "bool": True,
        "Infinity": float("inf"),
        "-Infinity": float("-inf"),
        "NaN": float("nan"),
        "huge": 10**400,
    }
    payload = json.dumps(claims | {"exp": values[exp]}, allow_nan=True)
    if exp in ("Infinity", "NaN"):
        assert f'"exp": {exp}' in payload
    token = hand_made({"alg": "HS256", "typ": "JWT", "kid": KID}, payload, TEST_SECRET.encode())
    await assert_refused(world.client, token)


@pytest.mark.parametrize("name", ["iat", "nbf"])
async def test_other_time_claims_as_strings_are_refused(world, claims, name):
    await assert_refused(world.client, sign(claims | {name: str(claims[name])}))


async def test_expired_token_is_refused(world, claims):
    now = int(time.time())
    await assert_refused(
        world.client, sign(claims | {"iat": now - 4000, "nbf": now - 4000, "exp": now - 3600})
    )


async def test_far_exp_does_not_outlive_the_configured_ttl(world, claims):
    """Lifetime is iat + access_token_ttl (900 s) + leeway, whatever `exp` says."""
    now = int(time.time())
    ten_years = now + 10 * 365 * 86400
    await assert_refused(
        world.client, sign(claims | {"iat": now - 1000, "nbf": now - 1000, "exp": ten_years})
    )
    # Just inside the TTL the same far `exp` is still refused only because of age, not of `exp`.
    resp = await me(world.client, sign(claims | {"iat": now - 800, "nbf": now - 800, "exp": ten_years}))
    assert resp.status_code == 200, resp.text


async def test_not_yet_valid_token_is_refused(world, claims):
    await assert_refused(world.client, sign(claims | {"nbf": int(time.time()) + 3600}))


async def test_token_issued_in_the_future_is_refused(world, claims):
    now = int(time.time())
    await assert_refused(world.client, sign(claims | {"iat": now + 3600, "exp": now + 3900}))


@pytest.mark.parametrize("aud", ["someone-else", ["someone-else"], "liaison-api ", ""])
async def test_wrong_audience_is_refused(world, claims, aud):
    await assert_refused(world.client, sign(claims | {"aud": aud}))


@pytest.mark.parametrize("iss", ["evil", "Liaison", "liaison ", ["liaison"], 7])
async def test_wrong_issuer_is_refused(world, claims, iss):
    await assert_refused(world.client, sign(claims | {"iss": iss}))


# --- what the token names ----------------------------------------------------------------------


async def test_refresh_token_is_not_an_access_token(world, claims):
    pair = await world.login("a-clinician")
    await assert_refused(world.client, pair["refresh_token"])
    await assert_refused(world.client, sign(claims | {"typ": "refresh"}))


async def test_other_users_sub_with_this_session_is_refused(world, claims):
    await assert_refused(world.client, sign(claims | {"sub": str(world.users["a-org_admin"])}))


async def test_other_org_claim_is_refused(world, claims):
    await assert_refused(world.client, sign(claims | {"org": str(world.orgs["B"])}))


@pytest.mark.parametrize("sid", [None, "not-a-uuid", "unknown"])
async def test_missing_or_unknown_session_is_refused(world, claims, sid):
    if sid == "unknown":  # a uuid no session has; made here, as ids must match across xdist workers
        sid = str(uuid.uuid4())
    changed = {k: v for k, v in claims.items() if k != "sid"} if sid is None else claims | {"sid": sid}
    await assert_refused(world.client, sign(changed))


# --- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["../../etc/passwd", "x' OR '1'='1", "liaison-1 ", "LIAISON-1", "", None])
async def test_unknown_or_hostile_kid_is_refused(world, claims, kid):
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256", headers={"kid": kid})
    assert jwt.get_unverified_header(token).get("kid") == kid
    await assert_refused(world.client, token)


async def test_token_without_kid_is_refused(world, claims):
    await assert_refused(world.client, jwt.encode(claims, TEST_SECRET, algorithm="HS256"))


ATTACKER_JWK = {
    "kty": "oct",
    "k": b64url(b"attacker-chosen-secret-attacker-chosen"),
    "alg": "HS256",
    "kid": KID,
}


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"jwk": ATTACKER_JWK},
        {"x5c": ["MIIBszCCAVmgAwIBAgIU"]},
        {"crit": ["exp"]},
        {"crit": ["x-liaison-unknown"], "x-liaison-unknown": True},
    ],
    ids=["jku", "x5u", "jwk", "x5c", "crit", "crit-unknown"],
)
async def test_key_fetching_and_crit_headers_are_refused(world, claims, header):
    """Signed with the real secret and kid: the header is the only thing wrong."""
    token = sign(claims, headers=header)
    assert jwt.get_unverified_header(token)["kid"] == KID
    await assert_refused(world.client, token)


# --- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "a.b.c",
        "...",
        "eyJhbGciOiJIUzI1NiJ9..",
        "e30.e30.",
        "W10.W10.",
        "bnVsbA.bnVsbA.",
        "A" * 9000,
    ],
    ids=["one-part", "garbage", "dots", "empty-payload", "empty-objects", "arrays", "nulls", "too-long"],
)
async def test_malformed_tokens_are_refused(world, token):
    await assert_refused(world.client, token)


async def test_payload_that_is_a_json_list_is_refused(world):
    token = hand_made({"alg": "HS256", "typ": "JWT", "kid": KID}, '["liaison"]', TEST_SECRET.encode())
    await assert_refused(world.client, token)


# --- replay after sign-out ---------------------------------------------------------------------


async def test_access_token_replayed_after_sign_out_is_refused(world):
    pair = await world.login("b-specialist")
    auth = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await world.client.get(ME, headers=auth)).status_code == 200
    assert (await world.client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    await assert_refused(world.client, pair["access_token"])
    # A freshly signed token naming the signed-out session fails too: revocation is by session.
    issued = jwt.get_unverified_claims(pair["access_token"])
    now = int(time.time())
    await assert_refused(
        world.client, sign(issued | {"jti": uuid.uuid4().hex, "iat": now, "nbf": now, "exp": now + 300})
    )


# --- logging -----------------------------------------------------------------------------------


async def test_refusals_log_a_fingerprint_never_the_token(world, claims, caplog):
    caplog.set_level(logging.DEBUG)
    now = int(time.time())
    tokens = [
        sign(claims | {"exp": now - 3600, "iat": now - 4000, "nbf": now - 4000}),
        sign(claims, headers={"jku": "https://attacker.example/jwks.json"}),
        hand_made({"alg": "none", "kid": KID}, json.dumps(claims), None),
        hand_made(
            {"alg": "HS256", "kid": KID}, json.dumps(claims | {"exp": float("inf")}), TEST_SECRET.encode()
        ),
    ]
    for token in tokens:
        await assert_refused(world.client, token)
    text = caplog.text
    for token in tokens:
        assert f"sha256:{token_fingerprint(token)}" in text
        for part in token.split("."):
            if part:
                assert part not in text
    assert TEST_SECRET not in text


# --- algorithm confusion against an RS256 server -----------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TestRS256Server:
    """The server signs with RS256; its public key must never work as an HMAC secret."""

    @pytest.fixture
    def settings_overrides(self, rsa_key) -> dict:
        pem = rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {"jwt_algorithm": "RS256", "jwt_private_key": pem}

    async def test_server_issues_rs256_and_a_token_signed_here_with_the_private_key_is_accepted(
        self, world, rsa_key
    ):
        pair = await world.login("a-clinician")
        assert jwt.get_unverified_header(pair["access_token"]) == {"alg": "RS256", "kid": KID, "typ": "JWT"}
        private_pem = rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        token = sign(await baseline_claims(world), alg="RS256", key=private_pem)
        resp = await me(world.client, token)
        assert resp.status_code == 200, resp.text
        assert resp.json()["username"] == "a-clinician"

    @pytest.mark.parametrize("form", ["spki-pem", "spki-der", "pkcs1-pem", "pkcs1-der"])
    async def test_hs256_signed_with_the_public_key_is_refused(self, world, rsa_key, form):
        encoding, fmt = form.split("-")
        public = rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM if fmt == "pem" else serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo
            if encoding == "spki"
            else serialization.PublicFormat.PKCS1,
        )
        claims = await baseline_claims(world)
        token = hand_made({"alg": "HS256", "typ": "JWT", "kid": KID}, json.dumps(claims), public)
        await assert_refused(world.client, token)

    async def test_hs256_signed_with_the_configured_secret_is_refused(self, world):
        await assert_refused(world.client, sign(await baseline_claims(world)))

    async def test_rs256_signed_with_another_key_is_refused(self, world):
        other = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            .decode()
        )
        await assert_refused(world.client, sign(await baseline_claims(world), alg="RS256", key=other))
