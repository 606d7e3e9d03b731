"""An org trusts its own OIDC identity provider: its JWKS verifies tokens mapped to the org's users."""

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt

from api.db import commit
from auth.models import ExternalIdentity

ISSUER = "https://idp.org-a.example/realms/clinic"
AUDIENCE = "liaison-org-a"
KID = "idp-key-1"
SUBJECT = "idp-subject-7f3a"
ME = "/api/v1/me"


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_jwk(key: rsa.RSAPrivateKey, kid: str = KID) -> dict:
    """The public half as a JWK: kid, kty, n, e, alg; no private members."""
    out = jwk.construct(private_pem(key), "RS256").public_key().to_dict() | {"kid": kid}
    assert set(out) == {"kid", "kty", "n", "e", "alg"}
    return out


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def idp_token(key: rsa.RSAPrivateKey, *, kid: str = KID, **changes) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    } | changes
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None},
        private_pem(key),
        algorithm="RS256",
        headers={"kid": kid},
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_by_hand(claims: dict, secret: bytes, kid: str = KID) -> str:
    signing_input = (
        f"{b64url(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}."
        f"{b64url(json.dumps(claims).encode())}"
    )
    return f"{signing_input}.{b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


async def register(
    world,
    key: rsa.RSAPrivateKey,
    *,
    admin: str = "a-org_admin",
    org: str = "A",
    jwks: dict | None = None,
    issuer: str = ISSUER,
):
    return await world.client.post(
        f"/api/v1/orgs/{world.orgs[org]}/identity-providers",
        headers=await world.headers(admin),
        json={"issuer": issuer, "audience": AUDIENCE, "jwks": jwks or {"keys": [public_jwk(key)]}},
    )


async def link(
    world, idp_id: str, username: str, *, admin: str = "a-org_admin", org: str = "A", subject: str = SUBJECT
):
    return await world.client.post(
        f"/api/v1/orgs/{world.orgs[org]}/identity-providers/{idp_id}/links",
        headers=await world.headers(admin),
        json={"user_id": str(world.users[username]), "subject": subject},
    )


@pytest.fixture
async def linked_idp(world, idp_key) -> str:
    """Org A trusts ISSUER and maps SUBJECT to a-clinician; returns the provider's id."""
    resp = await register(world, idp_key)
    assert resp.status_code == 201, resp.text
    idp_id = resp.json()["id"]
    resp = await link(world, idp_id, "a-clinician")
    assert resp.status_code == 201, resp.text
    return idp_id


async def me(world, token: str):
    return await world.client.get(ME, headers={"Authorization": f"Bearer {token}"})


async def assert_refused(world, token: str) -> None:
    resp = await me(world, token)
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == "invalid_token"


# --- the happy path ----------------------------------------------------------------------------


async def test_register_link_and_sign_in_with_the_idp(world, idp_key):
    resp = await register(world, idp_key)
    assert resp.status_code == 201, resp.text
    idp = resp.json()
    assert idp["issuer"] == ISSUER and idp["audience"] == AUDIENCE and idp["org_id"] == str(world.orgs["A"])
    assert "jwks" not in idp
    resp = await link(world, idp["id"], "a-clinician")
    assert resp.status_code == 201, resp.text
    assert resp.json()["subject"] == SUBJECT and resp.json()["user_id"] == str(world.users["a-clinician"])

    resp = await me(world, idp_token(idp_key))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["kind"] == "user" and body["username"] == "a-clinician"
    assert body["id"] == str(world.users["a-clinician"]) and body["org_id"] == str(world.orgs["A"])

    listed = await world.client.get(
        f"/api/v1/orgs/{world.orgs['A']}/identity-providers", headers=await world.headers("a-org_admin")
    )
    assert listed.status_code == 200 and [p["id"] for p in listed.json()] == [idp["id"]]


async def test_idp_user_gets_the_roles_of_the_linked_user(world, idp_key, linked_idp):
    resp = await link(world, linked_idp, "a-coordinator", subject="coordinator-subject")
    assert resp.status_code == 201, resp.text
    body = (await me(world, idp_token(idp_key, sub="coordinator-subject"))).json()
    assert body["username"] == "a-coordinator" and "users:read" in body["permissions"]


# --- refusals ----------------------------------------------------------------------------------


async def test_token_signed_by_another_key_with_the_same_kid_is_refused(world, other_key, linked_idp):
    await assert_refused(world, idp_token(other_key))


async def test_unknown_kid_is_refused(world, idp_key, linked_idp):
    await assert_refused(world, idp_token(idp_key, kid="idp-key-2"))


async def test_unlinked_subject_is_refused(world, idp_key, linked_idp):
    await assert_refused(world, idp_token(idp_key, sub="someone-not-linked"))


@pytest.mark.parametrize("material", ["spki-pem", "spki-der", "pkcs1-pem", "jwk-json", "modulus"])
async def test_hs256_signed_with_the_public_key_material_is_refused(world, idp_key, linked_idp, material):
    public = idp_key.public_key()
    secrets = {
        "spki-pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "spki-der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "pkcs1-pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "jwk-json": json.dumps(public_jwk(idp_key)).encode(),
        "modulus": public_jwk(idp_key)["n"].encode(),
    }
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "iat": now, "exp": now + 300}
    await assert_refused(world, hs256_by_hand(claims, secrets[material]))


async def test_expired_token_is_refused(world, idp_key, linked_idp):
    now = int(time.time())
    await assert_refused(world, idp_token(idp_key, iat=now - 4000, exp=now - 3600))


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "liaison-api"},
        {"aud": "another-audience"},
        {"exp": None},
        {"iat": None},
        {"sub": None},
        {"nbf": "future"},
        {"exp": "string"},
    ],
    ids=["our-audience", "other-audience", "no-exp", "no-iat", "no-sub", "nbf-future", "exp-string"],
)
async def test_tokens_with_bad_claims_are_refused(world, idp_key, linked_idp, changes):
    now = int(time.time())
    if changes.get("nbf") == "future":
        changes = {"nbf": now + 3600}
    if changes.get("exp") == "string":
        changes = {"exp": str(now + 300)}
    await assert_refused(world, idp_token(idp_key, **changes))


async def test_unregistered_issuer_is_refused(world, idp_key, linked_idp):
    await assert_refused(world, idp_token(idp_key, iss="https://idp.elsewhere.example/"))


async def test_idp_token_with_jku_header_is_refused(world, idp_key, linked_idp):
    now = int(time.time())
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "iat": now, "exp": now + 300},
        private_pem(idp_key),
        algorithm="RS256",
        headers={"kid": KID, "jku": "https://attacker.example/jwks.json"},
    )
    await assert_refused(world, token)


async def test_disabled_linked_user_is_refused(world, idp_key, linked_idp):
    assert (await me(world, idp_token(idp_key))).status_code == 200
    resp = await world.client.patch(
        f"/api/v1/orgs/{world.orgs['A']}/users/{world.users['a-clinician']}",
        json={"is_active": False},
        headers=await world.headers("a-org_admin"),
    )
    assert resp.status_code == 200, resp.text
    await assert_refused(world, idp_token(idp_key))


# --- the organization boundary -----------------------------------------------------------------


async def test_idp_of_org_a_cannot_map_to_a_user_of_org_b(world, idp_key, linked_idp):
    resp = await link(world, linked_idp, "b-specialist", subject="b-subject")
    assert resp.status_code == 404 and resp.json()["code"] == "not_found"
    await assert_refused(world, idp_token(idp_key, sub="b-subject"))


async def test_org_b_admin_cannot_link_through_org_a_idp(world, idp_key, linked_idp):
    # Org B's admin, naming org B in the path but org A's provider: still not found.
    resp = await link(world, linked_idp, "b-specialist", admin="b-org_admin", org="B", subject="b-subject")
    assert resp.status_code == 404 and resp.json()["code"] == "not_found"
    await assert_refused(world, idp_token(idp_key, sub="b-subject"))


async def test_another_orgs_admin_gets_404_on_every_route(world, idp_key, linked_idp):
    headers = await world.headers("b-org_admin")
    base = f"/api/v1/orgs/{world.orgs['A']}/identity-providers"
    answers = [
        await world.client.post(
            base,
            headers=headers,
            json={"issuer": "https://b.example", "audience": "x", "jwks": {"keys": [public_jwk(idp_key)]}},
        ),
        await world.client.get(base, headers=headers),
        await world.client.post(
            f"{base}/{linked_idp}/links",
            headers=headers,
            json={"user_id": str(world.users["a-org_admin"]), "subject": "takeover"},
        ),
    ]
    for resp in answers:
        assert resp.status_code == 404, resp.text
        assert resp.json()["code"] == "not_found"
    # Nothing was created: the takeover subject does not sign anyone in.
    await assert_refused(world, idp_token(idp_key, sub="takeover"))


async def test_non_admin_may_not_manage_providers(world, idp_key):
    resp = await register(world, idp_key, admin="a-coordinator")
    assert resp.status_code == 403 and resp.json()["code"] == "permission_denied"


async def test_an_issuer_is_registered_once_per_org(world, idp_key, linked_idp):
    resp = await register(world, idp_key)
    assert resp.status_code == 409 and resp.json()["code"] == "conflict"


async def test_another_org_registering_the_issuer_neither_squats_nor_shadows(
    world, idp_key, other_key, linked_idp
):
    """B may trust the same issuer (a shared IdP); A's registration and A's sign-ins stay A's."""
    resp = await register(world, other_key, admin="b-org_admin", org="B")
    assert resp.status_code == 201, resp.text  # A registered first: no squatting the name
    b_idp = resp.json()["id"]
    assert (await link(world, b_idp, "b-clinician", admin="b-org_admin", org="B")).status_code == 201
    # A's IdP-signed token still signs in A's user: B's keys do not verify it, B's links do not apply.
    assert (await me(world, idp_token(idp_key))).json()["username"] == "a-clinician"
    # A token signed with B's key (B's IdP, or B itself) reaches only B's linked user.
    assert (await me(world, idp_token(other_key))).json()["username"] == "b-clinician"


async def test_two_registrations_that_both_match_sign_in_neither(world, idp_key, linked_idp):
    """Same issuer, keys, audience and subject in two orgs: the token cannot say which org it is for."""
    resp = await register(world, idp_key, admin="b-org_admin", org="B")
    assert (
        await link(world, resp.json()["id"], "b-clinician", admin="b-org_admin", org="B")
    ).status_code == 201
    await assert_refused(world, idp_token(idp_key))


async def test_liaisons_own_issuer_cannot_be_registered(world, idp_key):
    resp = await register(world, idp_key, issuer="liaison")
    assert resp.status_code == 422 and resp.json()["code"] == "invalid_input"


# --- JWKS validation ---------------------------------------------------------------------------


def _bad_jwks(key: rsa.RSAPrivateKey) -> dict[str, dict]:
    public = public_jwk(key)
    private = jwk.construct(private_pem(key), "RS256").to_dict() | {"kid": KID}
    assert "d" in private
    return {
        "private-rsa": {"keys": [private]},
        "d-member": {"keys": [public | {"d": "AQAB"}]},
        "oct": {
            "keys": [
                {"kty": "oct", "kid": KID, "k": b64url(b"a-shared-secret-a-shared-secret!"), "alg": "HS256"}
            ]
        },
        "hs-alg-on-rsa": {"keys": [public | {"alg": "HS256"}]},
        "no-kid": {"keys": [{k: v for k, v in public.items() if k != "kid"}]},
        "no-keys": {"keys": []},
        "not-a-list": {"keys": "nope"},
        "key-not-object": {"keys": ["nope"]},
        "rsa-without-modulus": {"keys": [{"kty": "RSA", "kid": KID, "e": "AQAB"}]},
        "ec-without-point": {"keys": [{"kty": "EC", "kid": KID, "crv": "P-256"}]},
        "ec-off-curve": {"keys": [{"kty": "EC", "kid": KID, "crv": "P-256", "x": "AA", "y": "AA"}]},
    }


@pytest.mark.parametrize(
    "case",
    [
        "private-rsa",
        "d-member",
        "oct",
        "hs-alg-on-rsa",
        "no-kid",
        "no-keys",
        "not-a-list",
        "key-not-object",
        "rsa-without-modulus",
        "ec-without-point",
        "ec-off-curve",
    ],
)
async def test_unusable_jwks_is_refused_at_registration(world, idp_key, case):
    resp = await register(world, idp_key, jwks=_bad_jwks(idp_key)[case])
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == "invalid_input"
    listed = await world.client.get(
        f"/api/v1/orgs/{world.orgs['A']}/identity-providers", headers=await world.headers("a-org_admin")
    )
    assert listed.json() == []


async def test_a_subject_is_linked_once(world, idp_key, linked_idp):
    resp = await link(world, linked_idp, "a-specialist")
    assert resp.status_code == 409 and resp.json()["code"] == "conflict"
    body = (await me(world, idp_token(idp_key))).json()
    assert body["username"] == "a-clinician"


async def test_a_cross_org_link_already_in_the_database_still_signs_no_one_in(
    app, world, idp_key, linked_idp
):
    """Defence in depth: should a link to another org's user exist (bad import, moved user), it is ignored."""
    async with app.state.sessionmaker() as session:
        session.add(
            ExternalIdentity(
                idp_id=uuid.UUID(linked_idp), subject="b-subject", user_id=world.users["b-specialist"]
            )
        )
        await commit(session)
    await assert_refused(world, idp_token(idp_key, sub="b-subject"))
