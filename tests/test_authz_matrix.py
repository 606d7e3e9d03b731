"""The authorization matrix: every route × caller × org relation, generated from the app's route table.

The routes come from the app itself (`app.routes`, flattened through the routers it includes), so a
new route cannot be forgotten: a route that is neither in EXPECTATIONS nor in PUBLIC_ROUTES fails
`test_route_table_is_covered` and its own `test_authz_matrix[...]` case, naming it. A WebSocket
route (or a mount) under /api/v1 needs an entry in WEBSOCKET_CHECKS the same way.

Callers are the four roles of org A, the platform admin ("root", org Ops) and an anonymous caller
(no token: 401 everywhere). Relations say whose resource the request names:

- `same`     org A's own resource;
- `partner`  org B's, which has an agreement with A (A may send trauma-surgery consults to B);
             for agreements: one that B proposed to A, where `same` is one that A proposed;
- `other`    org C's, with no agreement with A; for agreements: one between B and C;
- `missing`  ids that do not exist: another org's resource must answer exactly like this (404);
- `mixed-*`  A's own org id in the path with a child resource (user, identity provider) of B;
- `-`        the route names no org (who am I, the directory, lists scoped to the caller's org).

Consults add the states a consult of A can be in towards a-specialist: `offered` (offered to them),
`assigned` (accepted by them), `completed` (and completed), `participant` (assigned, and a-org_admin
invited into its calls); `same`, `partner` and `other` are consults requested by a clinician of A, B
or C that nobody was offered. A few routes add their own relations (`self`, `no-profile`,
`not-specialist`, `ineligible`), described at their builders.

Each case builds its own fresh state (agreements in the right status, unique names), so cases do
not depend on each other; only a consult no case changes (one for the refusals and reads of a
relation) is shared within a route. The world is rebuilt per route, not per case, to keep the
runtime down; every mismatch of a route is collected and reported together as a table.

WebSocket routes run on a real server (uvicorn, over the same database and Redis) in WEBSOCKET_CHECKS.

Beyond the status, every refusal must be application/problem+json with the expected `code`, every
404 must be exactly the "missing" answer (so ids do not leak), nothing may answer 500, and the
successful answers of list and read routes are checked for rows of orgs the caller may not see.
"""

import asyncio
import base64
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import fastapi.routing
import httpx
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute
from jose import jwt
from starlette.routing import WebSocketRoute

import events.router
from agreements.models import Agreement
from api.db import commit
from auth.models import IdentityProvider, IntegrationClient
from liaison.app import create_app
from rosters.models import Roster, Shift, SpecialistProfile
from tests.conftest import World, make_settings
from tests.live import EventClient, http, put_on_call, serve
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

API = "/api/v1"

# Routes that need no token, so have no authorization matrix. Everything else is in EXPECTATIONS.
PUBLIC_ROUTES = frozenset(
    {
        "GET /openapi.json",
        "GET /docs",
        "GET /docs/oauth2-redirect",
        "GET /redoc",  # the OpenAPI document and its viewers
        "MOUNT /docs-assets",  # the viewers' packaged files
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",  # operations
        "GET /.well-known/jwks.json",
        "GET /.well-known/oauth-authorization-server",  # public keys and metadata, for any relying party
        "GET /asyncapi.json",  # the WebSockets' protocol (AsyncAPI)
        f"POST {API}/auth/login",
        f"POST {API}/auth/refresh",
        f"POST {API}/auth/token",  # how one gets a token
        f"OPTIONS {API}/consults/{{consult_id}}/uploads",  # what the tus server speaks: no data
    }
)

CALLERS = {  # role -> username (all of org A but root, who is in org Ops)
    "clinician": "a-clinician",
    "specialist": "a-specialist",
    "coordinator": "a-coordinator",
    "org_admin": "a-org_admin",
    "platform_admin": "root",
    "anonymous": None,
}
TARGETED = ("same", "partner", "other", "missing")
UNTARGETED = ("-",)
ORG_OF = {"same": "A", "partner": "B", "other": "C"}

# The code each refusal carries unless an entry says otherwise.
DEFAULT_CODES = {401: "invalid_token", 403: "permission_denied", 404: "not_found"}
# Another org's resource answers exactly as a missing one does (auth.exceptions.Hidden).
HIDDEN = {
    "type": "/problems/not_found",
    "title": "Not found",
    "status": 404,
    "detail": "Not found",
    "code": "not_found",
}

Outcome = int | tuple[int, str]  # a status, or a status and the problem `code`


# --- the test's own view of the world -------------------------------------------------------------


@cache
def jwks() -> dict:
    """A public RSA JWK made here, for identity providers."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return {
        "keys": [
            {
                "kty": "RSA",
                "kid": "matrix-1",
                "alg": "RS256",
                "use": "sig",
                "n": b64(numbers.n),
                "e": b64(numbers.e),
            }
        ]
    }


@dataclass
class Matrix:
    world: World
    app: FastAPI
    client: httpx.AsyncClient  # answers a crash with its 500 instead of raising, so it lands in the table
    idps: dict[str, uuid.UUID] = field(default_factory=dict)  # org key -> an identity provider of it
    bc_agreement: uuid.UUID | None = None  # B -> C, active: A is not a party
    _n: itertools.count = field(default_factory=itertools.count)
    on_call: set[str] = field(default_factory=set)  # usernames put on call for ROUTED in their org
    rosters: dict[str, uuid.UUID] = field(
        default_factory=dict
    )  # org key -> a roster with its specialist on shift now
    offers: dict[str, set[str]] = field(default_factory=dict)  # username -> consult ids offered to them
    seeded: set[str] = field(default_factory=set)  # once-per-route setups done
    consults: dict[str, Any] = field(default_factory=dict)  # relation -> a consult no case changes

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}-{next(self._n)}"

    def org(self, rel: str) -> uuid.UUID:
        return self.world.orgs[ORG_OF[rel]] if rel in ORG_OF else uuid.uuid4()

    def user(self, rel: str) -> uuid.UUID:
        """A user of the target org (its clinician)."""
        return self.world.users[f"{ORG_OF[rel].lower()}-clinician"] if rel in ORG_OF else uuid.uuid4()

    def idp(self, rel: str) -> uuid.UUID:
        return self.idps[ORG_OF[rel]] if rel in ORG_OF else uuid.uuid4()

    async def add_idp(self, org_key: str) -> uuid.UUID:
        async with self.app.state.sessionmaker() as session:
            idp = IdentityProvider(
                org_id=self.world.orgs[org_key],
                issuer=f"https://{self.unique('idp')}.example",
                audience="liaison-matrix",
                jwks=jwks(),
            )
            session.add(idp)
            await commit(session)
            return idp.id

    async def add_agreement(
        self,
        requesting: str,
        providing: str,
        *,
        status: str,
        proposed_by: str,
        suspended_by: str | None = None,
    ) -> uuid.UUID:
        now = datetime.now(UTC)
        async with self.app.state.sessionmaker() as session:
            agreement = Agreement(
                requesting_org_id=self.world.orgs[requesting],
                providing_org_id=self.world.orgs[providing],
                specialties=["trauma-surgery"],
                valid_from=now - timedelta(days=1),
                valid_until=now + timedelta(days=30),
                status=status,
                proposed_by_org_id=self.world.orgs[proposed_by],
                suspended_by_org_id=self.world.orgs[suspended_by] if suspended_by else None,
                created_by=self.world.users[f"{proposed_by.lower()}-org_admin"],
            )
            session.add(agreement)
            await commit(session)
            return agreement.id

    async def agreement(self, rel: str, status: str) -> uuid.UUID:
        """A fresh agreement: `same` proposed by A to B, `partner` proposed by B to A, `other` B to C.
        A suspended one was suspended by its proposer."""
        parties = {"same": ("A", "B"), "partner": ("B", "A"), "other": ("B", "C")}
        if rel not in parties:
            return uuid.uuid4()
        requesting, providing = parties[rel]
        return await self.add_agreement(
            requesting,
            providing,
            status=status,
            proposed_by=requesting,
            suspended_by=requesting if status == "suspended" else None,
        )


@pytest.fixture
def settings_overrides() -> dict:
    # Webhook endpoints on loopback (nothing listens on port 9), and no worker to send them anything.
    return {"webhooks_allow_private_addresses": True, "webhooks_worker": False}


@pytest.fixture
async def matrix(app, world) -> AsyncIterator[Matrix]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://liaison.test") as client:
        m = Matrix(world=world, app=app, client=client)
        for key in ("A", "B", "C"):
            m.idps[key] = await m.add_idp(key)
        m.bc_agreement = await m.add_agreement("B", "C", status="active", proposed_by="B")
        yield m


# --- what each route expects ------------------------------------------------------------------------


@dataclass
class Call:
    path: dict[str, Any] = field(default_factory=dict)  # path parameters
    json: Any = None
    query: dict[str, Any] | None = None
    fresh_session: bool = False  # sign in afresh for this one call (signing out ends the session)
    headers: dict[str, str] = field(default_factory=dict)  # beyond the token (tus uploads)
    content: bytes | None = None  # a raw body, instead of json


Builder = Callable[[Matrix, str, str], Awaitable[Call]]
Check = Callable[
    [Matrix, str, str, Call, Any], str | None
]  # a successful answer's leak check: a complaint or None


@dataclass(frozen=True)
class Entry:
    build: Builder
    expect: dict[
        str, Outcome | dict[str, Outcome]
    ]  # role (or "*") -> outcome, or relation (or "*") -> outcome
    relations: tuple[str, ...] = TARGETED
    check: Check | None = None


def own_org(ok: Outcome) -> dict[str, Outcome]:
    """The org boundary: the caller's own org's resource, else 404 like a missing one."""
    return {"same": ok, "*": 404}


# Builders: (matrix, role, relation) -> the call's path parameters and body, with fresh state.


async def nothing(m: Matrix, role: str, rel: str) -> Call:
    return Call()


async def sign_out(m: Matrix, role: str, rel: str) -> Call:
    return Call(fresh_session=True)


async def org_only(m: Matrix, role: str, rel: str) -> Call:
    return Call({"org_id": m.org(rel)})


async def new_client(m: Matrix, role: str, rel: str) -> Call:
    return Call({"org_id": m.org(rel)}, {"name": m.unique("client"), "scopes": ["users:read"]})


async def new_idp(m: Matrix, role: str, rel: str) -> Call:
    return Call(
        {"org_id": m.org(rel)},
        {"issuer": f"https://{m.unique('issuer')}.example", "audience": "liaison-matrix", "jwks": jwks()},
    )


def existing_client(body: Any = None) -> Builder:
    """A fresh client of the target org (each case may disable, rotate or delete it)."""

    async def build(m: Matrix, role: str, rel: str) -> Call:
        client_id = uuid.uuid4()
        if rel in ORG_OF:
            async with m.app.state.sessionmaker() as session:
                client = IntegrationClient(
                    org_id=m.world.orgs[ORG_OF[rel]], name=m.unique("client"), secret_hash="0" * 64
                )
                session.add(client)
                await commit(session)
                client_id = client.id
        return Call({"org_id": m.org(rel), "client_id": client_id}, body)

    return build


def existing_idp(body: Any = None) -> Builder:
    """A fresh identity provider of the target org (each case may disable or delete it)."""

    async def build(m: Matrix, role: str, rel: str) -> Call:
        idp = await m.add_idp(ORG_OF[rel]) if rel in ORG_OF else uuid.uuid4()
        return Call({"org_id": m.org(rel), "idp_id": idp}, body)

    return build


async def new_webhook(m: Matrix, role: str, rel: str) -> Call:
    return Call(
        {"org_id": m.org(rel)}, {"url": "http://127.0.0.1:9/hook", "event_types": ["consult.created"]}
    )


async def _add_webhook(m: Matrix, rel: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A fresh endpoint of the target org, with one delivery in its log (random ids if missing)."""
    if rel not in ORG_OF:
        return uuid.uuid4(), uuid.uuid4()
    org_id = m.world.orgs[ORG_OF[rel]]
    async with m.app.state.sessionmaker() as session:
        endpoint = WebhookEndpoint(org_id=org_id, url="http://127.0.0.1:9/hook", secret="whsec_" + "A" * 32)
        session.add(endpoint)
        await session.flush()
        delivery = WebhookDelivery(
            endpoint_id=endpoint.id,
            org_id=org_id,
            seq=1,
            event_key="matrix",
            position=1,
            type="consult.created",
            status=DeliveryStatus.failed,
        )
        session.add(delivery)
        await commit(session)
        return endpoint.id, delivery.id


def existing_webhook(body: Any = None, *, delivery: bool = False) -> Builder:
    """A fresh endpoint of the target org (each case may change or delete it), or one of its deliveries."""

    async def build(m: Matrix, role: str, rel: str) -> Call:
        endpoint_id, delivery_id = await _add_webhook(m, rel)
        path = {"org_id": m.org(rel), "endpoint_id": endpoint_id}
        return Call(path | ({"delivery_id": delivery_id} if delivery else {}), body)

    return build


LINK_RELATIONS = TARGETED + ("mixed-idp", "mixed-user")


async def new_link(m: Matrix, role: str, rel: str) -> Call:
    org, idp, user = m.org(rel if rel in TARGETED else "same"), m.idp(rel), m.user(rel)
    if rel == "mixed-idp":  # A's org and user, B's identity provider
        idp, user = m.idp("partner"), m.user("same")
    elif rel == "mixed-user":  # A's org and identity provider, B's user
        idp, user = m.idp("same"), m.user("partner")
    return Call({"org_id": org, "idp_id": idp}, {"user_id": str(user), "subject": m.unique("subject")})


async def new_org(m: Matrix, role: str, rel: str) -> Call:
    return Call(json={"name": m.unique("Org"), "kind": "ngo"})


async def new_user(m: Matrix, role: str, rel: str) -> Call:
    return Call(
        {"org_id": m.org(rel)},
        {"username": m.unique("user"), "password": "matrix-password-1", "roles": ["clinician"]},
    )


async def rename_user(m: Matrix, role: str, rel: str) -> Call:
    if rel == "mixed":  # A's org id, B's user
        return Call(
            {"org_id": m.org("same"), "user_id": m.user("partner")}, {"display_name": m.unique("name")}
        )
    return Call({"org_id": m.org(rel), "user_id": m.user(rel)}, {"display_name": m.unique("name")})


async def new_proposal(m: Matrix, role: str, rel: str) -> Call:
    """`same`: A asks B; `partner`: B asks A (A as the provider); `other`: B asks C (A is no party)."""
    requesting, providing = {"same": ("A", "B"), "partner": ("B", "A"), "other": ("B", "C")}[rel]
    now = datetime.now(UTC)
    return Call(
        json={
            "requesting_org_id": str(m.world.orgs[requesting]),
            "providing_org_id": str(m.world.orgs[providing]),
            "specialties": ["cardiology"],
            "valid_from": now.isoformat(),
            "valid_until": (now + timedelta(days=30)).isoformat(),
        }
    )


async def existing_agreement(m: Matrix, role: str, rel: str) -> Call:
    ids = {"same": m.world.agreement_id, "other": m.bc_agreement}
    return Call({"agreement_id": ids[rel] if rel in ids else await m.agreement(rel, "active")})


def agreement_in(status: str) -> Builder:
    async def build(m: Matrix, role: str, rel: str) -> Call:
        return Call({"agreement_id": await m.agreement(rel, status)})

    return build


async def audit_after_other_orgs_acted(m: Matrix, role: str, rel: str) -> Call:
    # Give B and C events of their own, which A's admin must not see.
    for admin in ("b-org_admin", "c-org_admin"):
        org = m.world.orgs[admin[0].upper()]
        resp = await m.world.client.get(f"{API}/orgs/{org}/users", headers=await m.world.headers(admin))
        assert resp.status_code == 200, resp.text
    return Call(query={"limit": 200})


# Checks of successful answers: no row of an org the caller may not see.


def caller_org(m: Matrix, role: str) -> uuid.UUID:
    return m.world.orgs["ops" if role == "platform_admin" else "A"]


def is_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    user = m.world.users[CALLERS[role]]
    return None if body.get("id") == str(user) else f"/me answered {body.get('id')}, not the caller {user}"


def rows_of_target_org(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    rows = body["items"] if isinstance(body, dict) else body
    wrong = [r for r in rows if r.get("org_id") != str(call.path["org_id"])]
    return f"{len(wrong)} rows of another org: {wrong[:2]}" if wrong else None


def is_target(name: str, key: str | None = None) -> Check:
    def check(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
        got, want = body.get(key or "id"), str(call.path[name])
        return None if got == want else f"answered {key or 'id'} {got}, asked for {want}"

    return check


def created_in_target_org(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    return None if body.get("org_id") == str(call.path["org_id"]) else f"created in org {body.get('org_id')}"


def agreements_of_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    mine = str(caller_org(m, role))
    wrong = [a["id"] for a in body["items"] if mine not in (a["requesting_org_id"], a["providing_org_id"])]
    return f"agreements the caller's org is no party to: {wrong}" if wrong else None


def audit_of_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    if role == "platform_admin":  # the operator reads the whole trail
        return None
    mine = str(caller_org(m, role))
    wrong = [
        (e["seq"], e["action"], e["org_id"])
        for e in body["items"]
        if mine not in (e["org_id"], e["actor_org_id"])
    ]
    return f"events of other orgs: {wrong[:3]}" if wrong else None


# Consults, rosters and the live events. Consults are made through the API as the right clinician:
# `same`, `partner` and `other` are consults of A, B and C in a specialty nobody is on call for (they
# wait, unassigned); `offered` is one of A offered to a-specialist (on call for ROUTED in A, so every
# emergent ROUTED consult of A rings them at creation); `assigned` one a-specialist accepted;
# `completed` one a-specialist accepted and completed; `participant` one a-specialist accepted into
# whose calls a-clinician invited a-org_admin (as an interpreter).

QUIET = "burns"  # nobody is ever on call for it
ROUTED = "trauma-surgery"  # a-specialist goes on call for it in A when a case needs it
CONSULT_BODY = {"urgency": "emergent", "mode": "live", "question": "q", "patient_ref": "P-1"}
COMPLETE_BODY = {"recommendation": "Splint and review in 24 h", "disposition": "manage_locally"}
CONSULT_RELATIONS = TARGETED + ("offered", "assigned")
CLOSING_RELATIONS = CONSULT_RELATIONS + ("completed",)
INVITEE = "a-org_admin"  # whom invitations name: a user of A who is neither requester nor assignee
A_CONSULTS = ("same", "offered", "assigned")  # open consults of A requested by a-clinician


async def act(m: Matrix, username: str, method: str, path: str, body: Any = None, want: int = 200) -> Any:
    """A setup request, as `username`, that must succeed."""
    resp = await m.world.client.request(
        method, f"{API}{path}", json=body, headers=await m.world.headers(username)
    )
    assert resp.status_code == want, f"setup {method} {path} as {username}: {resp.status_code} {resp.text}"
    return resp.json() if resp.content else None


async def put_user_on_call(m: Matrix, username: str) -> None:
    if username not in m.on_call:
        await put_on_call(
            m.app.state.sessionmaker,
            org_id=m.world.orgs[username[0].upper()],
            user_ids=[m.world.users[username]],
            specialty=ROUTED,
            max_concurrent=50,
        )
        m.on_call.add(username)


async def new_consult(m: Matrix, requester: str, specialty: str = QUIET) -> dict:
    return await act(m, requester, "POST", "/consults", CONSULT_BODY | {"specialty": specialty}, 201)


async def consult_in(m: Matrix, rel: str) -> uuid.UUID | str:
    """A fresh consult in the relation's state (see above), or a random id."""
    if rel == "missing":
        return uuid.uuid4()
    if rel in ORG_OF:
        return (await new_consult(m, f"{ORG_OF[rel].lower()}-clinician"))["id"]
    await put_user_on_call(m, "a-specialist")
    consult = await new_consult(m, "a-clinician", ROUTED)
    assert consult["status"] == "offered", consult
    if rel in ("assigned", "completed", "participant"):
        await act(m, "a-specialist", "POST", f"/consults/{consult['id']}/accept")
    if rel == "completed":
        await act(m, "a-specialist", "POST", f"/consults/{consult['id']}/complete", COMPLETE_BODY)
    if rel == "participant":
        await act(
            m,
            "a-clinician",
            "POST",
            f"/consults/{consult['id']}/participants",
            {"user_id": str(m.world.users[INVITEE]), "role": "interpreter"},
            201,
        )
    return consult["id"]


async def consult_for(
    m: Matrix, rel: str, *, fresh: bool, prepare: Callable[[Matrix, str, Any], Awaitable[None]] | None = None
) -> Any:
    """A fresh consult for a case that changes it; otherwise one kept per relation for the route's
    cases, since refusals and reads change no consult."""
    if fresh or rel not in m.consults:
        consult_id = await consult_in(m, rel)
        if prepare is not None:
            await prepare(m, rel, consult_id)
        if fresh:
            return consult_id
        m.consults[rel] = consult_id
    return m.consults[rel]


def succeeds(build: Builder, role: str, rel: str) -> bool:
    """Whether the case of the entry built by `build` is expected to succeed."""
    entry = next(e for e in EXPECTATIONS.values() if e.build is build)
    return 200 <= expected(entry, role, rel)[0] < 300


def on_consult(body: Any = None, *, changes: bool = True) -> Builder:
    """The relation's consult; a fresh one for each case expected to change it."""

    async def build(m: Matrix, role: str, rel: str) -> Call:
        return Call(
            {"consult_id": await consult_for(m, rel, fresh=changes and succeeds(build, role, rel))}, body
        )

    return build


async def first_message(m: Matrix, rel: str, consult_id: Any) -> None:
    if rel != "missing":  # its requester writes in its thread
        await act(
            m,
            f"{ORG_OF.get(rel, 'A').lower()}-clinician",
            "POST",
            f"/consults/{consult_id}/messages",
            {"body": "first"},
            201,
        )


async def consult_with_message(m: Matrix, role: str, rel: str) -> Call:
    return Call({"consult_id": await consult_for(m, rel, fresh=False, prepare=first_message)})


# Attachments: uploads are their uploader's (the requester of the relation's consult); attachments are
# a PNG the requester posted in the thread.
TUS = {"Tus-Resumable": "1.0.0"}
CLIP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 2024  # an MP4's signature
POSTED: dict[str, dict[str, str]] = {}  # consult id -> the ids of what its requester posted in it


def requester(rel: str) -> str:
    return f"{ORG_OF.get(rel, 'A').lower()}-clinician"


async def open_upload(m: Matrix, rel: str, consult_id: Any) -> str:
    resp = await m.world.client.post(
        f"{API}/consults/{consult_id}/uploads",
        headers=await m.world.headers(requester(rel)) | TUS | {"Upload-Length": str(len(CLIP))},
    )
    assert resp.status_code == 201, f"setup upload on {rel}: {resp.status_code} {resp.text}"
    return resp.headers["location"].rsplit("/", 1)[1]


async def post_attachment(m: Matrix, rel: str, consult_id: Any) -> None:
    if rel == "missing":
        return
    headers = await m.world.headers(requester(rel))
    image = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNg+M8AAAICAQB7CYF4AAAAAElFTkSuQmCC"
    )
    resp = await m.world.client.post(
        f"{API}/consults/{consult_id}/uploads", headers=headers | TUS | {"Upload-Length": str(len(image))}
    )
    upload_id = resp.headers["location"].rsplit("/", 1)[1]
    done = await m.world.client.patch(
        f"{API}/consults/{consult_id}/uploads/{upload_id}",
        content=image,
        headers=headers | TUS | {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert done.status_code == 204, f"setup attachment on {rel}: {done.status_code} {done.text}"
    message = await act(
        m,
        requester(rel),
        "POST",
        f"/consults/{consult_id}/messages",
        {"body": "see the photo", "attachment_ids": [done.headers["attachment-id"]]},
        201,
    )
    POSTED[str(consult_id)] = {"attachment_id": done.headers["attachment-id"], "message_id": message["id"]}


def posted(consult_id: Any, name: str) -> Any:
    return POSTED.get(str(consult_id), {}).get(name, uuid.uuid4())


async def new_upload(m: Matrix, role: str, rel: str) -> Call:
    consult_id = await consult_for(m, rel, fresh=False)
    return Call({"consult_id": consult_id}, headers=TUS | {"Upload-Length": str(len(CLIP))})


def an_upload(m_body: bool) -> Builder:
    """A fresh upload by the requester of the relation's consult; with its bytes to PATCH, if asked."""

    async def build(m: Matrix, role: str, rel: str) -> Call:
        consult_id = await consult_for(m, rel, fresh=False)
        upload_id = uuid.uuid4() if rel == "missing" else await open_upload(m, rel, consult_id)
        headers = TUS | (
            {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"} if m_body else {}
        )
        return Call(
            {"consult_id": consult_id, "upload_id": upload_id},
            headers=headers,
            content=CLIP if m_body else None,
        )

    return build


async def consult_with_attachment(m: Matrix, role: str, rel: str) -> Call:
    consult_id = await consult_for(m, rel, fresh=False, prepare=post_attachment)
    return Call({"consult_id": consult_id, "attachment_id": posted(consult_id, "attachment_id")})


async def read_receipt(m: Matrix, role: str, rel: str) -> Call:
    consult_id = await consult_for(m, rel, fresh=False, prepare=post_attachment)
    return Call({"consult_id": consult_id}, {"message_id": str(posted(consult_id, "message_id"))})


def attachments_seen(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    """Only the count and types for a specialist merely offered the consult; its own items otherwise."""
    if role == "specialist" and rel == "offered":
        return "items for a specialist only offered it" if body["items"] is not None else None
    wrong = [a["id"] for a in body["items"] or [] if a["consult_id"] != str(call.path["consult_id"])]
    return f"attachments of other consults: {wrong}" if wrong else None


async def assignment(m: Matrix, role: str, rel: str) -> Call:
    """Assign to a-specialist; `ineligible`: A's consult to C's specialist (no agreement)."""
    specialist = m.world.users["c-specialist" if rel == "ineligible" else "a-specialist"]
    consult_id = await consult_for(
        m, "same" if rel == "ineligible" else rel, fresh=succeeds(assignment, role, rel)
    )
    return Call({"consult_id": consult_id}, {"specialist_id": str(specialist)})


async def invitation(m: Matrix, role: str, rel: str) -> Call:
    """Invite INVITEE; `ineligible`: A's consult, C's clinician (no agreement, nobody of C assigned)."""
    invitee = m.world.users["c-clinician" if rel == "ineligible" else INVITEE]
    consult_id = await consult_for(
        m, "same" if rel == "ineligible" else rel, fresh=succeeds(invitation, role, rel)
    )
    return Call({"consult_id": consult_id}, {"user_id": str(invitee), "role": "interpreter"})


async def consults_everywhere(m: Matrix, role: str, rel: str) -> Call:
    """Once per route: consults of A, B and C in every state, so that lists have rows to leak."""
    if "consults" not in m.seeded:
        m.seeded.add("consults")
        for rel_ in ("same", "partner", "other", "offered", "assigned", "completed"):
            await consult_in(m, rel_)
    return Call()


async def stats_everywhere(m: Matrix, role: str, rel: str) -> Call:
    await consults_everywhere(m, role, rel)
    return Call(query={"group_by": "org"})


async def offers_everywhere(m: Matrix, role: str, rel: str) -> Call:
    """Once per route: a consult of A offered to a-specialist, and one of B offered to b-specialist."""
    if "offers" not in m.seeded:
        m.seeded.add("offers")
        for requester, specialist in (("a-clinician", "a-specialist"), ("b-clinician", "b-specialist")):
            await put_user_on_call(m, specialist)
            consult = await new_consult(m, requester, ROUTED)
            m.offers.setdefault(specialist, set()).add(consult["id"])
    return Call()


async def new_consult_call(m: Matrix, role: str, rel: str) -> Call:
    return Call(json=CONSULT_BODY | {"specialty": QUIET})


# rosters and profiles


def specialist_of(m: Matrix, role: str, rel: str) -> uuid.UUID:
    if rel == "self":
        return m.world.users[CALLERS[role]] if CALLERS[role] else uuid.uuid4()
    return m.world.users[f"{ORG_OF[rel].lower()}-specialist"] if rel in ORG_OF else uuid.uuid4()


async def profile_of(m: Matrix, role: str, rel: str) -> Call:
    return Call(
        {"user_id": specialist_of(m, role, rel)},
        {"specialties": [ROUTED], "languages": ["en"], "max_concurrent": 3},
    )


async def availability(m: Matrix, role: str, rel: str) -> Call:
    """`-`: the caller has a specialist profile; `no-profile`: they have none."""
    if (username := CALLERS[role]) is not None:
        user_id = m.world.users[username]
        async with m.app.state.sessionmaker() as session:
            profile = await session.get(SpecialistProfile, user_id)
            if rel == "-" and profile is None:
                session.add(
                    SpecialistProfile(
                        user_id=user_id, org_id=caller_org(m, role), specialties=[ROUTED], languages=["en"]
                    )
                )
            elif rel == "no-profile" and profile is not None:
                await session.delete(profile)
            await commit(session)
    return Call(json={"availability": "busy"})


async def roster_of(m: Matrix, org_key: str) -> uuid.UUID:
    """Once per route and org: a roster of the org with its specialist on shift now."""
    if org_key not in m.rosters:
        now = datetime.now(UTC)
        async with m.app.state.sessionmaker() as session:
            roster = Roster(org_id=m.world.orgs[org_key], specialty=QUIET, name=m.unique("roster"))
            session.add(roster)
            await session.flush()
            session.add(
                Shift(
                    roster_id=roster.id,
                    org_id=roster.org_id,
                    specialist_id=m.world.users[f"{org_key.lower()}-specialist"],
                    starts_at=now - timedelta(hours=1),
                    ends_at=now + timedelta(hours=8),
                )
            )
            await commit(session)
            m.rosters[org_key] = roster.id
    return m.rosters[org_key]


async def rosters_everywhere(m: Matrix, role: str, rel: str) -> Call:
    for key in ("A", "B", "C"):
        await roster_of(m, key)
    return Call()


async def a_roster(m: Matrix, role: str, rel: str) -> Call:
    return Call({"roster_id": await roster_of(m, ORG_OF[rel]) if rel in ORG_OF else uuid.uuid4()})


async def new_roster(m: Matrix, role: str, rel: str) -> Call:
    return Call(json={"specialty": QUIET, "name": m.unique("roster")})


SHIFT_RELATIONS = TARGETED + ("mixed-user", "not-specialist")


async def new_shift(m: Matrix, role: str, rel: str) -> Call:
    """A shift for the roster's org's specialist; `mixed-user`: A's roster, B's specialist;
    `not-specialist`: A's roster, A's clinician."""
    roster_rel, user = rel, specialist_of(m, role, rel) if rel in TARGETED else None
    if rel == "mixed-user":
        roster_rel, user = "same", m.world.users["b-specialist"]
    elif rel == "not-specialist":
        roster_rel, user = "same", m.world.users["a-clinician"]
    now = datetime.now(UTC)
    return Call(
        {"roster_id": (await a_roster(m, role, roster_rel)).path["roster_id"]},
        {
            "specialist_id": str(user),
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(hours=4)).isoformat(),
            "tier": 2,
        },
    )


async def new_policy(m: Matrix, role: str, rel: str) -> Call:
    return Call({"org_id": m.org(rel)}, {"emergent": 90, "urgent": 600, "routine": 7200})


# Checks of consult, roster and offer answers.


def consult_seen(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    """The consult asked for, and only its triage summary for a specialist merely offered it."""
    if complaint := is_target("consult_id")(m, role, rel, call, body):
        return complaint
    if role == "specialist" and rel == "offered" and {"patient_ref", "requester_id", "details"} & set(body):
        return "more than the triage summary for a specialist only offered it"
    return None


def consults_of_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    me, org = str(m.world.users[CALLERS[role]]), str(caller_org(m, role))
    queue = role == "coordinator"  # the org's queue
    wrong = [
        (c["id"], c["org_id"])
        for c in body["items"]
        if c.get("assigned_to") != me and not (c["org_id"] == org if queue else c.get("requester_id") == me)
    ]
    return (
        f"consults neither requested by, assigned to nor queued for the caller: {wrong[:3]}"
        if wrong
        else None
    )


def requested_by_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    me, org = str(m.world.users[CALLERS[role]]), str(caller_org(m, role))
    return (
        None
        if (body.get("requester_id"), body.get("org_id")) == (me, org)
        else f"created for {body.get('requester_id')} of org {body.get('org_id')}"
    )


def offers_of_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    mine = m.offers.get(CALLERS[role], set())
    wrong = [o["consult_id"] for o in body["items"] if o["consult_id"] not in mine]
    full = [o["consult_id"] for o in body["items"] if "patient_ref" in o["consult"]]
    if wrong:
        return f"offers made to someone else: {wrong}"
    return f"full consults in offers: {full}" if full else None


def invited_as_asked(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    got = (body.get("consult_id"), body.get("user_id"), body.get("invited_by"))
    want = (str(call.path["consult_id"]), call.json["user_id"], str(m.world.users[CALLERS[role]]))
    return None if got == want else f"participant {got}, asked for {want}"


def call_token_of_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    claims = jwt.get_unverified_claims(body["token"])
    got = (claims.get("sub"), claims.get("cid"), claims.get("room"), body.get("room"))
    consult_id = str(call.path["consult_id"])
    want = (str(m.world.users[CALLERS[role]]), consult_id, f"consult-{consult_id}", f"consult-{consult_id}")
    return None if got == want else f"call token for {got}, expected {want}"


def precall_token_of_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    claims = jwt.get_unverified_claims(body["token"])
    got = (
        claims.get("sub"),
        claims.get("cid"),
        claims.get("room") == body.get("room"),
        body.get("room", "")[:8],
    )
    want = (str(m.world.users[CALLERS[role]]), None, True, "precall-")
    return None if got == want else f"pre-call token {got}, expected {want}"


def thread_of_target(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    wrong = [msg["id"] for msg in body["items"] if msg["consult_id"] != str(call.path["consult_id"])]
    return f"messages of other consults: {wrong}" if wrong else None


def calls_of_target(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    wrong = [c["id"] for c in body["items"] if c["consult_id"] != str(call.path["consult_id"])]
    return f"calls of other consults: {wrong}" if wrong else None


def message_by_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    me = str(m.world.users[CALLERS[role]])
    if body.get("consult_id") != str(call.path["consult_id"]) or body.get("author_id") != me:
        return f"message of consult {body.get('consult_id')} by {body.get('author_id')}"
    return None


def assigned_as_asked(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    return is_target("consult_id")(m, role, rel, call, body) or (
        None
        if body.get("assigned_to") == call.json["specialist_id"]
        else f"assigned to {body.get('assigned_to')}"
    )


def assigned_to_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    me = str(m.world.users[CALLERS[role]])
    return is_target("consult_id")(m, role, rel, call, body) or (
        None if body.get("assigned_to") == me else f"assigned to {body.get('assigned_to')}, not the caller"
    )


def stats_of_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    wrong = [row["group"] for row in body if row["group"] != str(caller_org(m, role))]
    return f"clocks of other orgs: {wrong}" if wrong else None


def profile_of_target(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    want = (str(call.path["user_id"]), str(caller_org(m, role)))
    got = (body.get("user_id"), body.get("org_id"))
    return None if got == want else f"profile {got}, asked for {want}"


def own_availability(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    me = str(m.world.users[CALLERS[role]])
    return None if (body.get("user_id"), body.get("availability")) == (me, "busy") else f"answered {body}"


def created_in_caller_org(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    return None if body.get("org_id") == str(caller_org(m, role)) else f"created in org {body.get('org_id')}"


def rosters_of_caller(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    wrong = [r["id"] for r in body["items"] if r["org_id"] != str(caller_org(m, role))]
    return f"rosters of other orgs: {wrong}" if wrong else None


def shift_as_asked(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    got = (body.get("roster_id"), body.get("specialist_id"))
    want = (str(call.path["roster_id"]), call.json["specialist_id"])
    return None if got == want else f"shift {got}, asked for {want}"


def on_call_of_target(m: Matrix, role: str, rel: str, call: Call, body: Any) -> str | None:
    ours = {str(uid) for name, uid in m.world.users.items() if name.startswith(ORG_OF[rel].lower() + "-")}
    wrong = [row["specialist_id"] for row in body if row["specialist_id"] not in ours]
    return f"specialists of other orgs on call: {wrong}" if wrong else None


# The events WebSocket: on a real server (uvicorn, in this loop) over the same database and Redis, so
# that the events of the requests made through it reach its sockets even with the in-process bus.

EVENTS_TIMEOUT = 8.0  # longer than any server-side timeout (the sockets' auth or join wait is 5 s by default)
QUIET_TIME = 0.3  # how long a socket that should get nothing is listened to


async def ws_first_answer(
    host: str, first: str | None, *, closes: bool = True, path: str = "/events"
) -> tuple[dict | None, int | None]:
    """Send `first` (or nothing at all); the server's first message and, if it `closes`, the close code."""
    async with websockets.connect(
        f"ws://{host}{API}{path}", compression=None, open_timeout=EVENTS_TIMEOUT
    ) as ws:
        if first is not None:
            await ws.send(first)
        answer = None
        with contextlib.suppress(websockets.ConnectionClosed, asyncio.TimeoutError):
            answer = json.loads(await asyncio.wait_for(ws.recv(), EVENTS_TIMEOUT))
        if closes:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), EVENTS_TIMEOUT)
        return answer, ws.close_code


async def drain(client: EventClient, seconds: float = QUIET_TIME) -> list[dict]:
    with contextlib.suppress(asyncio.TimeoutError, websockets.ConnectionClosed):
        while True:
            client.events.append(json.loads(await asyncio.wait_for(client.ws.recv(), seconds)))
    return client.events


async def events_socket(m: Matrix) -> list[str]:
    rows: list[str] = []
    w = m.world
    signed_out = await w.login("a-clinician")
    await w.client.post(
        f"{API}/auth/logout", headers={"Authorization": f"Bearer {signed_out['access_token']}"}
    )
    refresh = (await w.login("a-clinician"))["refresh_token"]
    refused = {  # what a socket says first -> the error code it must get before the close
        "no first message": (None, "auth_required"),
        "not JSON": ("hello", "auth_required"),
        "a non-auth first message": (json.dumps({"type": "ping"}), "auth_required"),
        "auth without a token": (json.dumps({"type": "auth"}), "auth_required"),
        "a malformed token": (json.dumps({"type": "auth", "token": "not-a-jwt"}), "invalid_token"),
        "a refresh token": (json.dumps({"type": "auth", "token": refresh}), "invalid_token"),
        "a signed-out session's token": (
            json.dumps({"type": "auth", "token": signed_out["access_token"]}),
            "invalid_token",
        ),
    }
    settings = m.app.state.settings.model_copy(
        update={"escalation_worker": False}
    )  # the matrix's app runs one
    patience = getattr(events.router, "AUTH_TIMEOUT", None)
    if patience is not None:
        events.router.AUTH_TIMEOUT = 0.5  # so that "no first message" is answered sooner
    try:
        async with serve(settings) as (_, host), http(host) as client:
            for case, (first, code) in refused.items():
                answer, closed = await ws_first_answer(host, first)
                if not (
                    isinstance(answer, dict) and answer.get("type") == "error" and answer.get("code") == code
                ):
                    rows.append(f"{case}: first answer {answer}, expected an error {code!r}")
                if closed != 1008:
                    rows.append(f"{case}: close code {closed}, expected 1008")
            for role, username in CALLERS.items():
                if username is None:
                    continue
                answer, _ = await ws_first_answer(
                    host, json.dumps({"type": "auth", "token": await w.token(username)}), closes=False
                )
                if not (
                    isinstance(answer, dict)
                    and answer.get("type") == "ready"
                    and answer.get("user_id") == str(w.users[username])
                    and set(answer.get("channels", ())) <= channels_of(w, username)
                ):
                    rows.append(f"valid {role} token: first answer {answer}, expected ready for {username}")
            rows += await events_reach_only_their_users(m, host, client)
    finally:
        if patience is not None:
            events.router.AUTH_TIMEOUT = patience
    return rows


async def events_reach_only_their_users(m: Matrix, host: str, client: httpx.AsyncClient) -> list[str]:
    """A consult of A offered to a-specialist, accepted, discussed; one of B left unassigned. Each
    socket gets only its own user's events, about consults that concern them, and the offer only the
    triage summary; a replay from the start (last_event_id 0) likewise."""
    w, rows = m.world, []
    await put_user_on_call(m, "a-specialist")
    listeners = (
        "a-clinician",
        "a-specialist",
        "a-coordinator",
        "a-org_admin",
        "root",
        "b-clinician",
        "b-specialist",
        "b-coordinator",
        "c-coordinator",
    )

    async def call(username: str, method: str, path: str, body: Any = None, want: int = 200) -> Any:
        resp = await client.request(method, f"{API}{path}", json=body, headers=await w.headers(username))
        assert resp.status_code == want, f"{method} {path} as {username}: {resp.status_code} {resp.text}"
        return resp.json()

    async with contextlib.AsyncExitStack() as stack:
        sockets = {
            u: await stack.enter_async_context(EventClient.connect(host, await w.token(u))) for u in listeners
        }
        a = (await call("a-clinician", "POST", "/consults", CONSULT_BODY | {"specialty": ROUTED}, 201))["id"]
        await sockets["a-specialist"].wait_for("offer.created", EVENTS_TIMEOUT, consult_id=a)
        await call("a-specialist", "POST", f"/consults/{a}/accept")
        await call("a-clinician", "POST", f"/consults/{a}/messages", {"body": "pulse absent"}, 201)
        await call("a-specialist", "POST", f"/consults/{a}/messages", {"body": "evacuate"}, 201)
        b = (await call("b-clinician", "POST", "/consults", CONSULT_BODY | {"specialty": QUIET}, 201))["id"]
        expected = {  # username -> events it must get
            "a-clinician": [("consult.status", a), ("message.created", a)],
            "a-specialist": [("offer.created", a), ("consult.status", a), ("message.created", a)],
            "a-coordinator": [("queue.changed", a)],
            "b-clinician": [("consult.status", b)],
            "b-coordinator": [("queue.alert", b)],
        }
        for username, wanted in expected.items():
            for event, consult_id in wanted:
                try:
                    await sockets[username].wait_for(event, EVENTS_TIMEOUT, consult_id=consult_id)
                except AssertionError as exc:
                    rows.append(f"{username} missed an event: {exc}")
        await asyncio.gather(*(drain(s) for s in sockets.values()))
        concerns = {
            "a-clinician": {a},
            "a-specialist": {a},
            "a-coordinator": {a},
            "b-clinician": {b},
            "b-coordinator": {b},
        }
        for username, socket in sockets.items():
            rows += foreign_events(w, username, socket.events, concerns.get(username, set()), "live")

        async def replayed(username: str) -> list[str]:  # everything stored for them, from the start
            async with EventClient.connect(host, await w.token(username), last_event_id=0) as replay:
                return foreign_events(
                    w, username, await drain(replay), concerns.get(username, set()), "replayed"
                )

        for found in await asyncio.gather(*(replayed(u) for u in listeners)):
            rows += found
    return rows


def channels_of(w: World, username: str) -> set[str]:
    """Where a user's events may be addressed: to them, or to their org's coordinators if they are one."""
    mine = {f"u:{w.users[username]}"}
    if username.endswith("-coordinator"):
        mine.add(f"r:{w.orgs[username[0].upper()]}:coordinator")
    return mine


def foreign_events(w: World, username: str, got: list[dict], concerns: set[str], how: str) -> list[str]:
    me, mine = str(w.users[username]), channels_of(w, username)

    def addressed_to_me(e: dict) -> bool:
        return e.get("user_id") == me if "user_id" in e else e.get("channel") in mine

    rows = [
        f"{username} got {how} {e.get('event')} for {e.get('user_id', e.get('channel'))} about consult "
        f"{e.get('consult_id')}"
        for e in got
        if e.get("type") != "pong" and (not addressed_to_me(e) or e.get("consult_id") not in concerns)
    ]
    rows += [
        f"{username} got {how} an offer with more than the triage summary"
        for e in got
        if e.get("event") == "offer.created" and "patient_ref" in e.get("data", {}).get("consult", {})
    ]
    return rows


# The signaling WebSocket, on a real server likewise: the first message joins with a call token (or
# resumes), else an error and close 1008; a call token is single-use, bound to one consult's room, and
# good only while its holder still takes part in a consult that allows calls; rooms do not mix.


async def signaling_socket(m: Matrix) -> list[str]:
    w, rows = m.world, []
    await put_user_on_call(m, "a-specialist")
    settings = m.app.state.settings.model_copy(
        update={"escalation_worker": False, "signaling_join_timeout": 0.5}
    )
    async with serve(settings) as (_, host), http(host) as client:

        async def call(username: str, method: str, path: str, body: Any = None, want: int = 200) -> Any:
            resp = await client.request(method, f"{API}{path}", json=body, headers=await w.headers(username))
            assert resp.status_code == want, f"{method} {path} as {username}: {resp.status_code} {resp.text}"
            return resp.json()

        async def assigned() -> str:
            consult = await call(
                "a-clinician", "POST", "/consults", CONSULT_BODY | {"specialty": ROUTED}, 201
            )
            await call("a-specialist", "POST", f"/consults/{consult['id']}/accept")
            return consult["id"]

        async def token(username: str, consult_id: str) -> str:
            return (await call(username, "POST", f"/consults/{consult_id}/call-token"))["token"]

        one, two, closing = await assigned(), await assigned(), await assigned()
        await call(
            "a-clinician", "POST", f"/consults/{one}/participants", {"user_id": str(w.users[INVITEE])}, 201
        )
        lapsed = await token("a-clinician", closing)
        await call("a-specialist", "POST", f"/consults/{closing}/complete", COMPLETE_BODY)
        login = await w.login("a-clinician")
        spent = await token("a-clinician", two)
        async with websockets.connect(f"ws://{host}{API}/signaling", compression=None) as ws:
            await ws.send(json.dumps({"type": "join", "token": spent}))
            first = json.loads(await asyncio.wait_for(ws.recv(), EVENTS_TIMEOUT))
            if first.get("type") != "joined":
                rows.append(f"a fresh call token: first answer {first}, expected joined")
                return rows
            in_two = first["peer_id"]  # held for a resume within the grace period: still in room two
        join = lambda t: json.dumps({"type": "join", "token": t})  # noqa: E731
        refused = {  # what a socket says first -> the error code it must get before the close
            "a spent call token": (
                join(spent),
                "token_used",
            ),  # first: spent tokens live in Redis when scaled
            "no first message": (None, "join_timeout"),
            "not JSON": ("hello", "bad_json"),
            "a non-join first message": (json.dumps({"type": "ping"}), "join_first"),
            "an events-socket auth message": (
                json.dumps({"type": "auth", "token": login["access_token"]}),
                "unknown_type",
            ),
            "a malformed token": (join("not-a-jwt"), "invalid_token"),
            "an access token": (join(login["access_token"]), "invalid_token"),
            "a refresh token": (join(login["refresh_token"]), "invalid_token"),
            "the call token of a consult completed since": (join(lapsed), "call_closed"),
        }
        for case, (first, code) in refused.items():
            answer, closed = await ws_first_answer(host, first, path="/signaling")
            if not (
                isinstance(answer, dict) and answer.get("type") == "error" and answer.get("code") == code
            ):
                rows.append(f"{case}: first answer {answer}, expected an error {code!r}")
            if closed != 1008:
                rows.append(f"{case}: close code {closed}, expected 1008")
        in_one = {u: await token(u, one) for u in ("a-clinician", "a-specialist", INVITEE)}
        rows += await rooms_do_not_mix(host, w, in_one, one, await token("a-clinician", two), two, in_two)
    return rows


async def rooms_do_not_mix(
    host: str, w: World, tokens_one: dict[str, str], one: str, token_two: str, two: str, in_two: str
) -> list[str]:
    """The participants of consult `one` join its room and see each other; a-clinician's peer in the room
    of `two` (where only `in_two` is) sees none of them, and cannot reach them."""
    rows: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        peers: dict[str, tuple[Any, dict]] = {}
        for who, tok in [*tokens_one.items(), ("room two", token_two)]:
            ws = await stack.enter_async_context(
                websockets.connect(f"ws://{host}{API}/signaling", compression=None)
            )
            await ws.send(json.dumps({"type": "join", "token": tok}))
            joined = json.loads(await asyncio.wait_for(ws.recv(), EVENTS_TIMEOUT))
            room = f"consult-{two if who == 'room two' else one}"
            if joined.get("type") != "joined" or joined.get("room") != room:
                rows.append(f"{who}: answered {joined}, expected joined in {room}")
                return rows
            peers[who] = (ws, joined)
        ids_one = {peers[u][1]["peer_id"] for u in tokens_one}
        earlier: set[str] = set()
        for who, (_, joined) in peers.items():
            seen = {p["peer_id"] for p in joined["peers"]}
            if who != "room two" and not seen <= earlier:
                rows.append(f"{who} joined with unknown peers present: {seen - earlier}")
            if who == "room two" and seen - {in_two}:
                rows.append(f"the peer in another consult's room saw peers present: {seen - {in_two}}")
            earlier.add(joined["peer_id"])
        stranger, _ = peers["room two"]
        target = peers["a-clinician"][1]["peer_id"]
        await stranger.send(json.dumps({"type": "offer", "to": target, "sdp": "v=0\r\n"}))
        for who, (ws, _) in peers.items():
            got = []
            with contextlib.suppress(asyncio.TimeoutError, websockets.ConnectionClosed):
                while True:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), QUIET_TIME)))
            for msg in got:
                about = msg.get("peer_id") or msg.get("from")
                if who == "room two" and msg.get("type") != "error":
                    rows.append(f"the peer in another consult's room got {msg.get('type')} about {about}")
                elif who != "room two" and (
                    msg.get("type") not in ("peer-joined", "peer-left") or about not in ids_one
                ):
                    rows.append(f"{who} got {msg.get('type')} from {about}, not of its room")
    return rows


EXPECTATIONS: dict[str, Entry] = {
    # auth: any signed-in caller
    f"POST {API}/auth/logout": Entry(sign_out, {"*": 204}, UNTARGETED),
    f"GET {API}/me": Entry(nothing, {"*": 200}, UNTARGETED, check=is_caller),
    # an org's integration clients and identity providers: its own admin only (not the platform admin)
    f"POST {API}/orgs/{{org_id}}/clients": Entry(
        new_client, {"org_admin": own_org(201), "*": 403}, check=created_in_target_org
    ),
    f"GET {API}/orgs/{{org_id}}/clients": Entry(
        org_only, {"org_admin": own_org(200), "*": 403}, check=rows_of_target_org
    ),
    f"PATCH {API}/orgs/{{org_id}}/clients/{{client_id}}": Entry(
        existing_client({"is_active": False}),
        {"org_admin": own_org(200), "*": 403},
        check=is_target("client_id"),
    ),
    f"POST {API}/orgs/{{org_id}}/clients/{{client_id}}/secret": Entry(
        existing_client(), {"org_admin": own_org(200), "*": 403}, check=is_target("client_id")
    ),
    f"DELETE {API}/orgs/{{org_id}}/clients/{{client_id}}": Entry(
        existing_client(), {"org_admin": own_org(204), "*": 403}
    ),
    # an org's webhook endpoints and their delivery log: its own admin only
    f"POST {API}/orgs/{{org_id}}/webhooks": Entry(
        new_webhook, {"org_admin": own_org(201), "*": 403}, check=created_in_target_org
    ),
    f"GET {API}/orgs/{{org_id}}/webhooks": Entry(
        org_only, {"org_admin": own_org(200), "*": 403}, check=rows_of_target_org
    ),
    f"GET {API}/orgs/{{org_id}}/webhooks/{{endpoint_id}}": Entry(
        existing_webhook(), {"org_admin": own_org(200), "*": 403}, check=is_target("endpoint_id")
    ),
    f"PATCH {API}/orgs/{{org_id}}/webhooks/{{endpoint_id}}": Entry(
        existing_webhook({"enabled": False}),
        {"org_admin": own_org(200), "*": 403},
        check=is_target("endpoint_id"),
    ),
    f"POST {API}/orgs/{{org_id}}/webhooks/{{endpoint_id}}/secret": Entry(
        existing_webhook(), {"org_admin": own_org(200), "*": 403}, check=is_target("endpoint_id")
    ),
    f"DELETE {API}/orgs/{{org_id}}/webhooks/{{endpoint_id}}": Entry(
        existing_webhook(), {"org_admin": own_org(204), "*": 403}
    ),
    f"GET {API}/orgs/{{org_id}}/webhooks/{{endpoint_id}}/deliveries": Entry(
        existing_webhook(), {"org_admin": own_org(200), "*": 403}
    ),
    f"GET {API}/orgs/{{org_id}}/webhooks/{{endpoint_id}}/deliveries/{{delivery_id}}": Entry(
        existing_webhook(delivery=True), {"org_admin": own_org(200), "*": 403}, check=is_target("delivery_id")
    ),
    f"POST {API}/orgs/{{org_id}}/webhooks/{{endpoint_id}}/deliveries/{{delivery_id}}/redeliver": Entry(
        existing_webhook(delivery=True), {"org_admin": own_org(202), "*": 403}, check=is_target("delivery_id")
    ),
    f"PATCH {API}/orgs/{{org_id}}/identity-providers/{{idp_id}}": Entry(
        existing_idp({"is_active": False}), {"org_admin": own_org(200), "*": 403}, check=is_target("idp_id")
    ),
    f"DELETE {API}/orgs/{{org_id}}/identity-providers/{{idp_id}}": Entry(
        existing_idp(), {"org_admin": own_org(204), "*": 403}
    ),
    f"POST {API}/orgs/{{org_id}}/identity-providers": Entry(
        new_idp, {"org_admin": own_org(201), "*": 403}, check=created_in_target_org
    ),
    f"GET {API}/orgs/{{org_id}}/identity-providers": Entry(
        org_only, {"org_admin": own_org(200), "*": 403}, check=rows_of_target_org
    ),
    f"POST {API}/orgs/{{org_id}}/identity-providers/{{idp_id}}/links": Entry(
        new_link, {"org_admin": own_org(201), "*": 403}, LINK_RELATIONS, check=is_target("idp_id", "idp_id")
    ),
    # organizations: the platform admin creates them; the directory is open to every signed-in caller
    f"POST {API}/orgs": Entry(new_org, {"platform_admin": 201, "*": 403}, UNTARGETED),
    f"GET {API}/orgs": Entry(nothing, {"*": 200}, UNTARGETED),
    f"GET {API}/orgs/{{org_id}}": Entry(
        org_only, {"*": {"missing": 404, "*": 200}}, check=is_target("org_id")
    ),
    # users: the org's own admin (coordinators read); the platform admin only creates an org's first
    # admin (these orgs have theirs: tests/orgs/test_platform_admin.py), and reads or changes no user
    f"POST {API}/orgs/{{org_id}}/users": Entry(
        new_user,
        {
            "org_admin": own_org(201),
            "platform_admin": {"missing": 404, "*": (403, "first_admin_only")},
            "*": 403,
        },
        check=created_in_target_org,
    ),
    f"GET {API}/orgs/{{org_id}}/users": Entry(
        org_only,
        {
            "org_admin": own_org(200),
            "coordinator": own_org(200),
            "*": 403,
        },
        check=rows_of_target_org,
    ),
    f"PATCH {API}/orgs/{{org_id}}/users/{{user_id}}": Entry(
        rename_user,
        {"org_admin": own_org(200), "*": 403},
        TARGETED + ("mixed",),
        check=is_target("user_id"),
    ),
    # agreements: an org admin of a party manages, coordinators read; nobody else, not even the platform admin
    f"POST {API}/agreements": Entry(
        new_proposal,
        {"org_admin": {"same": 201, "partner": 201, "other": (422, "not_a_party")}, "*": 403},
        ("same", "partner", "other"),
        check=lambda m, role, rel, call, body: agreements_of_caller(m, role, rel, call, {"items": [body]}),
    ),
    f"GET {API}/agreements": Entry(
        nothing, {"org_admin": 200, "coordinator": 200, "*": 403}, UNTARGETED, check=agreements_of_caller
    ),
    f"GET {API}/agreements/{{agreement_id}}": Entry(
        existing_agreement,
        {
            "org_admin": {"same": 200, "partner": 200, "*": 404},
            "coordinator": {"same": 200, "partner": 200, "*": 404},
            "*": 403,
        },
        check=is_target("agreement_id"),
    ),
    # accept a proposal: the other party only, so A's own proposal is a conflict
    f"POST {API}/agreements/{{agreement_id}}/accept": Entry(
        agreement_in("proposed"),
        {"org_admin": {"same": (409, "wrong_party"), "partner": 200, "*": 404}, "*": 403},
        check=is_target("agreement_id"),
    ),
    f"POST {API}/agreements/{{agreement_id}}/suspend": Entry(
        agreement_in("active"),
        {"org_admin": {"same": 200, "partner": 200, "*": 404}, "*": 403},
        check=is_target("agreement_id"),
    ),
    # resume: only the party that suspended (here: the proposer), so B's suspension is a conflict for A
    f"POST {API}/agreements/{{agreement_id}}/resume": Entry(
        agreement_in("suspended"),
        {"org_admin": {"same": 200, "partner": (409, "wrong_party"), "*": 404}, "*": 403},
        check=is_target("agreement_id"),
    ),
    f"POST {API}/agreements/{{agreement_id}}/revoke": Entry(
        agreement_in("active"),
        {"org_admin": {"same": 200, "partner": 200, "*": 404}, "*": 403},
        check=is_target("agreement_id"),
    ),
    # audit: the org admin reads their org's events, the platform admin all
    f"GET {API}/audit": Entry(
        audit_after_other_orgs_acted,
        {"org_admin": 200, "platform_admin": 200, "*": 403},
        UNTARGETED,
        check=audit_of_caller,
    ),
    # specialist profiles: the specialist themself, or a roster manager (coordinator) of their org; anyone
    # else is answered as if the user did not exist. `self` names the caller, who may not be a specialist.
    f"PUT {API}/specialists/{{user_id}}": Entry(
        profile_of,
        {
            "specialist": {"same": 200, "self": 200, "*": 404},
            "coordinator": {"same": 200, "self": (422, "not_a_specialist"), "*": 404},
            "*": {"self": (422, "not_a_specialist"), "*": 404},
        },
        TARGETED + ("self",),
        check=profile_of_target,
    ),
    f"PUT {API}/me/availability": Entry(
        availability,
        {"specialist": {"-": 200, "no-profile": (422, "no_profile")}, "*": 403},
        ("-", "no-profile"),
        check=own_availability,
    ),
    # rosters: coordinators manage their org's, everyone of an org but the platform admin reads them
    f"POST {API}/rosters": Entry(
        new_roster, {"coordinator": 201, "*": 403}, UNTARGETED, check=created_in_caller_org
    ),
    f"GET {API}/rosters": Entry(
        rosters_everywhere, {"platform_admin": 403, "*": 200}, UNTARGETED, check=rosters_of_caller
    ),
    f"POST {API}/rosters/{{roster_id}}/shifts": Entry(
        new_shift,
        {"coordinator": {"same": 201, "not-specialist": (422, "not_a_specialist"), "*": 404}, "*": 403},
        SHIFT_RELATIONS,
        check=shift_as_asked,
    ),
    f"GET {API}/rosters/{{roster_id}}/on-call": Entry(
        a_roster, {"platform_admin": 403, "*": own_org(200)}, check=on_call_of_target
    ),
    # consults: clinicians request them; every signed-in caller lists what concerns them
    f"POST {API}/consults": Entry(
        new_consult_call, {"clinician": 201, "*": 403}, UNTARGETED, check=requested_by_caller
    ),
    f"GET {API}/consults": Entry(consults_everywhere, {"*": 200}, UNTARGETED, check=consults_of_caller),
    # one consult: requester and the requesting org's coordinators see all, the assignee too, a specialist
    # offered it the triage summary; to anyone else it does not exist
    f"GET {API}/consults/{{consult_id}}": Entry(
        on_consult(changes=False),
        {
            "clinician": {a: 200 for a in (*A_CONSULTS, "participant")} | {"*": 404},
            "specialist": {"offered": 200, "assigned": 200, "participant": 200, "*": 404},
            "coordinator": {a: 200 for a in (*A_CONSULTS, "participant")} | {"*": 404},
            "org_admin": {"participant": 200, "*": 404},
            "*": 404,
        },
        CONSULT_RELATIONS + ("participant",),
        check=consult_seen,
    ),
    f"GET {API}/offers": Entry(
        offers_everywhere, {"specialist": 200, "*": 403}, UNTARGETED, check=offers_of_caller
    ),
    # offers: only the specialist offered it answers; the one who won it, asking again, gets it again (a
    # retry whose first answer was lost), anyone else a conflict
    f"POST {API}/consults/{{consult_id}}/accept": Entry(
        on_consult(),
        {"specialist": {"offered": 200, "assigned": 200, "*": 404}, "*": 403},
        CONSULT_RELATIONS,
        check=assigned_to_caller,
    ),
    f"POST {API}/consults/{{consult_id}}/decline": Entry(
        on_consult(),
        {"specialist": {"offered": 204, "assigned": (409, "invalid_transition"), "*": 404}, "*": 403},
        CONSULT_RELATIONS,
    ),
    # cancel: the requester or the requesting org's coordinators; the assignee sees it but may not
    f"POST {API}/consults/{{consult_id}}/cancel": Entry(
        on_consult(),
        {
            "clinician": {a: 200 for a in A_CONSULTS} | {"completed": (409, "invalid_transition"), "*": 404},
            "coordinator": {a: 200 for a in A_CONSULTS}
            | {"completed": (409, "invalid_transition"), "*": 404},
            "specialist": {"assigned": 403, "completed": 403, "*": 404},
            "*": 404,
        },
        CLOSING_RELATIONS,
        check=is_target("consult_id"),
    ),
    # assign by hand: the requesting org's coordinators, to a specialist the org may send to
    f"POST {API}/consults/{{consult_id}}/assign": Entry(
        assignment,
        {
            "coordinator": {a: 200 for a in A_CONSULTS}
            | {"completed": (409, "invalid_transition"), "ineligible": (422, "not_eligible"), "*": 404},
            "*": 403,
        },
        CLOSING_RELATIONS + ("ineligible",),
        check=assigned_as_asked,
    ),
    f"POST {API}/consults/{{consult_id}}/complete": Entry(
        on_consult(COMPLETE_BODY),
        {"specialist": {"assigned": 200, "completed": (409, "invalid_transition"), "*": 404}, "*": 403},
        CLOSING_RELATIONS,
        check=assigned_to_caller,
    ),
    # rating: the requester, once completed; others who see the consult are refused, the rest 404
    f"POST {API}/consults/{{consult_id}}/rating": Entry(
        on_consult({"helpful": True}),
        {
            "clinician": {a: (409, "invalid_transition") for a in A_CONSULTS} | {"completed": 200, "*": 404},
            "coordinator": {a: 403 for a in (*A_CONSULTS, "completed")} | {"*": 404},
            "specialist": {"assigned": 403, "completed": 403, "*": 404},
            "*": 404,
        },
        CLOSING_RELATIONS,
        check=is_target("consult_id"),
    ),
    # the thread: whoever sees the whole consult; read-only once it is closed
    f"POST {API}/consults/{{consult_id}}/messages": Entry(
        on_consult({"body": "hello"}),
        {
            "clinician": {a: 201 for a in A_CONSULTS} | {"completed": (409, "invalid_transition"), "*": 404},
            "coordinator": {a: 201 for a in A_CONSULTS}
            | {"completed": (409, "invalid_transition"), "*": 404},
            "specialist": {"assigned": 201, "completed": (409, "invalid_transition"), "*": 404},
            "*": 404,
        },
        CLOSING_RELATIONS,
        check=message_by_caller,
    ),
    f"GET {API}/consults/{{consult_id}}/messages": Entry(
        consult_with_message,
        {
            "clinician": {a: 200 for a in (*A_CONSULTS, "participant")} | {"*": 404},
            "coordinator": {a: 200 for a in (*A_CONSULTS, "participant")} | {"*": 404},
            "specialist": {"assigned": 200, "participant": 200, "*": 404},
            "org_admin": {"participant": 200, "*": 404},
            "*": 404,
        },
        CONSULT_RELATIONS + ("participant",),
        check=thread_of_target,
    ),
    # uploads (tus): whoever may write in the thread opens one; an upload is its uploader's alone
    f"POST {API}/consults/{{consult_id}}/uploads": Entry(
        new_upload,
        {
            "clinician": {a: 201 for a in A_CONSULTS} | {"completed": (409, "invalid_transition"), "*": 404},
            "coordinator": {a: 201 for a in A_CONSULTS}
            | {"completed": (409, "invalid_transition"), "*": 404},
            "specialist": {"assigned": 201, "completed": (409, "invalid_transition"), "*": 404},
            "*": 404,
        },
        CLOSING_RELATIONS,
    ),
    **{
        f"{method} {API}/consults/{{consult_id}}/uploads/{{upload_id}}": Entry(
            an_upload(method == "PATCH"),
            {"clinician": {a: ok for a in A_CONSULTS} | {"*": 404}, "*": 404},
            CONSULT_RELATIONS,
        )
        for method, ok in (("HEAD", 200), ("GET", 200), ("PATCH", 204), ("DELETE", 204))
    },
    # attachments: their count and types for whoever sees the consult; their content as the thread
    f"GET {API}/consults/{{consult_id}}/attachments": Entry(
        consult_with_attachment,
        {
            "clinician": {a: 200 for a in (*A_CONSULTS, "participant")} | {"*": 404},
            "coordinator": {a: 200 for a in (*A_CONSULTS, "participant")} | {"*": 404},
            "specialist": {"offered": 200, "assigned": 200, "participant": 200, "*": 404},
            "org_admin": {"participant": 200, "*": 404},
            "*": 404,
        },
        CONSULT_RELATIONS + ("participant",),
        check=attachments_seen,
    ),
    **{
        f"GET {API}/consults/{{consult_id}}/{path}": Entry(
            build,
            {
                "clinician": {a: 200 for a in (*A_CONSULTS, "participant")} | {"*": 404},
                "coordinator": {a: 200 for a in (*A_CONSULTS, "participant")} | {"*": 404},
                "specialist": {"assigned": 200, "participant": 200, "*": 404},
                "org_admin": {"participant": 200, "*": 404},
                "*": 404,
            },
            CONSULT_RELATIONS + ("participant",),
        )
        for path, build in (
            ("attachments/{attachment_id}/content", consult_with_attachment),
            ("attachments/{attachment_id}/thumbnail", consult_with_attachment),
            ("reads", consult_with_message),
        )
    },
    # read receipts: whoever sees the thread says how far they read it
    f"PUT {API}/consults/{{consult_id}}/reads/me": Entry(
        read_receipt,
        {
            "clinician": {a: 200 for a in (*A_CONSULTS, "participant")} | {"*": 404},
            "coordinator": {a: 200 for a in (*A_CONSULTS, "participant")} | {"*": 404},
            "specialist": {"assigned": 200, "participant": 200, "*": 404},
            "org_admin": {"participant": 200, "*": 404},
            "*": 404,
        },
        CONSULT_RELATIONS + ("participant",),
    ),
    # call records: whoever sees the whole consult, as its thread
    f"GET {API}/consults/{{consult_id}}/calls": Entry(
        on_consult(changes=False),
        {
            "clinician": {a: 200 for a in (*A_CONSULTS, "participant", "completed")} | {"*": 404},
            "coordinator": {a: 200 for a in (*A_CONSULTS, "participant", "completed")} | {"*": 404},
            "specialist": {"assigned": 200, "participant": 200, "completed": 200, "*": 404},
            "org_admin": {"participant": 200, "*": 404},
            "*": 404,
        },
        CLOSING_RELATIONS + ("participant",),
        check=calls_of_target,
    ),
    # invite into the consult's calls: the requester, the assignee or the requesting org's coordinators, a
    # user of the requesting org or of the assignee's
    f"POST {API}/consults/{{consult_id}}/participants": Entry(
        invitation,
        {
            "clinician": {a: 201 for a in A_CONSULTS}
            | {"completed": (409, "invalid_transition"), "ineligible": (422, "not_eligible"), "*": 404},
            "coordinator": {a: 201 for a in A_CONSULTS}
            | {"completed": (409, "invalid_transition"), "ineligible": (422, "not_eligible"), "*": 404},
            "specialist": {"assigned": 201, "completed": (409, "invalid_transition"), "*": 404},
            "*": 404,
        },
        CLOSING_RELATIONS + ("ineligible",),
        check=invited_as_asked,
    ),
    # call tokens: the consult's participants (requester, assignee, invited), once it is accepted; a
    # coordinator sees the consult but is no participant
    f"POST {API}/consults/{{consult_id}}/call-token": Entry(
        on_consult(changes=False),
        {
            "clinician": {
                "assigned": 200,
                "participant": 200,
                "same": (409, "invalid_transition"),
                "offered": (409, "invalid_transition"),
                "completed": (409, "invalid_transition"),
                "*": 404,
            },
            "specialist": {
                "assigned": 200,
                "participant": 200,
                "completed": (409, "invalid_transition"),
                "*": 404,
            },
            "coordinator": {a: 403 for a in (*A_CONSULTS, "completed", "participant")} | {"*": 404},
            "org_admin": {"participant": 200, "*": 404},
            "*": 404,
        },
        CLOSING_RELATIONS + ("participant",),
        check=call_token_of_caller,
    ),
    # a pre-call check's echo room: any signed-in user
    f"POST {API}/precall": Entry(nothing, {"*": 200}, UNTARGETED, check=precall_token_of_caller),
    # response-time clocks: of the caller's org only
    f"GET {API}/stats/response-times": Entry(
        stats_everywhere, {"coordinator": 200, "org_admin": 200, "*": 403}, UNTARGETED, check=stats_of_caller
    ),
    # escalation policy: the org's coordinators and admin
    f"GET {API}/orgs/{{org_id}}/escalation-policy": Entry(
        org_only, {"coordinator": own_org(200), "org_admin": own_org(200), "*": 403}
    ),
    f"PUT {API}/orgs/{{org_id}}/escalation-policy": Entry(
        new_policy, {"coordinator": own_org(200), "org_admin": own_org(200), "*": 403}
    ),
}

# WebSocket routes (and mounts) under /api/v1, keyed "WS <path>": an async check (matrix) -> list of mismatch lines.
WEBSOCKET_CHECKS: dict[str, Callable[[Matrix], Awaitable[list[str]]]] = {
    # first message auth (else an error and close 1008), then only the caller's own events
    f"WS {API}/events": events_socket,
    # first message join with a single-use call token of one consult's room (else an error and close 1008)
    f"WS {API}/signaling": signaling_socket,
}


# --- the route table ----------------------------------------------------------------------------------


def route_keys(app: FastAPI) -> list[str]:
    """ "METHOD /path" of every HTTP route the app serves, "WS /path" of every WebSocket route, and
    "<KIND> /path" of anything else (a mount): included routers flattened."""
    flatten = getattr(
        fastapi.routing, "iter_route_contexts", None
    )  # FastAPI >= 0.137.2 includes routers lazily
    routes = list(flatten(app.routes)) if flatten else list(app.routes)
    keys: list[str] = []
    for route in routes:
        original = getattr(route, "original_route", route)
        path = str(getattr(route, "path", None) or getattr(original, "path", "?"))
        if isinstance(original, (APIWebSocketRoute, WebSocketRoute)):
            keys.append(f"WS {path}")
        elif methods := set(getattr(route, "methods", None) or ()):
            if "GET" in methods:
                methods.discard("HEAD")  # starlette adds HEAD to every GET
            keys.extend(f"{method} {path}" for method in sorted(methods))
        else:
            keys.append(f"{type(original).__name__.upper()} {path}")
    return keys


def _collection_app() -> FastAPI:
    # Building the app opens nothing: the engine and Redis come with the lifespan.
    return create_app(make_settings("sqlite+aiosqlite:///:memory:", None))


# FHIR answers its refusals as OperationOutcome, not problem+json: its routes have a matrix of
# their own, built from the same route table (tests/fhir/test_fhir_authz.py).
FHIR = "/fhir/R4/"
ALL_KEYS = route_keys(_collection_app())
MATRIX_KEYS = [k for k in ALL_KEYS if k not in PUBLIC_ROUTES and not k.split(" ", 1)[1].startswith(FHIR)]


def test_route_table_is_covered():
    missing = [k for k in MATRIX_KEYS if k not in EXPECTATIONS and k not in WEBSOCKET_CHECKS]
    stale = [k for k in (*EXPECTATIONS, *WEBSOCKET_CHECKS, *PUBLIC_ROUTES) if k not in ALL_KEYS]
    both = [k for k in PUBLIC_ROUTES if k in EXPECTATIONS]
    unprefixed = [k for k in MATRIX_KEYS if not k.split(" ", 1)[1].startswith(API + "/")]
    problems = [
        f"route without an authorization entry (add it to EXPECTATIONS, or PUBLIC_ROUTES if it needs no token): {k}"
        for k in missing
    ]
    problems += [f"entry for a route the app does not serve: {k}" for k in stale]
    problems += [f"both public and in the matrix: {k}" for k in both]
    problems += [f"non-public route outside {API}: {k}" for k in unprefixed]
    assert not problems, "\n" + "\n".join(problems)
    assert len(MATRIX_KEYS) >= 20  # the flattening found the included routers


def test_every_caller_and_relation_has_an_expectation():
    """Every (route, role, relation) resolves to one outcome, and some caller may call every route."""
    for key, entry in EXPECTATIONS.items():
        outcomes = {expected(entry, role, rel) for role in CALLERS for rel in entry.relations}
        assert any(200 <= status < 300 for status, _ in outcomes), f"{key}: nobody may call it"


# --- running it ---------------------------------------------------------------------------------------


def expected(entry: Entry, role: str, rel: str) -> tuple[int, str | None]:
    if role == "anonymous":
        outcome: Outcome = 401
    else:
        by_role = entry.expect.get(role, entry.expect.get("*"))
        if by_role is None:
            raise KeyError(f"no expectation for role {role}")
        outcome = by_role.get(rel, by_role.get("*")) if isinstance(by_role, dict) else by_role
        if outcome is None:
            raise KeyError(f"no expectation for role {role}, relation {rel}")
    if isinstance(outcome, tuple):
        return outcome
    return outcome, DEFAULT_CODES.get(outcome)


def _show(status: int, code: str | None) -> str:
    return f"{status} {code}" if code else str(status)


def _code(resp: httpx.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("code") if resp.status_code >= 400 and isinstance(body, dict) else None


def judge(resp: httpx.Response, want: tuple[int, str | None], *, head: bool = False) -> list[str]:
    """What is wrong with this answer, if anything (of a HEAD, which has no body, the status only)."""
    problems = []
    status, code = want
    if resp.status_code >= 500:
        problems.append("server error")
    elif resp.status_code != status:
        problems.append("status")
    if resp.status_code >= 400 and not head:
        ctype = resp.headers.get("content-type", "")
        body = resp.json() if ctype.startswith(("application/problem+json", "application/json")) else None
        if not ctype.startswith("application/problem+json"):
            problems.append(f"content-type {ctype!r}, not problem+json")
        if not isinstance(body, dict) or not isinstance(body.get("code"), str):
            problems.append("problem without a code")
        elif resp.status_code == status and code and body["code"] != code:
            problems.append(f"code {body['code']!r}, not {code!r}")
        if resp.status_code == 404 and body != HIDDEN:
            problems.append(f"404 differs from a missing resource's: {body}")
        if resp.status_code == 401 and "www-authenticate" not in resp.headers:
            problems.append("401 without WWW-Authenticate")
    return problems


async def run_entry(m: Matrix, key: str, entry: Entry) -> tuple[list[tuple[str, str, str, str]], int]:
    method, template = key.split(" ", 1)
    rows, count = [], 0
    for role, username in CALLERS.items():
        for rel in entry.relations:
            count += 1
            case = f"{key} | {role} | {rel}"
            want = expected(entry, role, rel)
            call = await entry.build(m, role, rel)
            headers = {}
            if username is not None:
                if call.fresh_session:
                    headers = {"Authorization": f"Bearer {(await m.world.login(username))['access_token']}"}
                else:
                    headers = await m.world.headers(username)
            resp = await m.client.request(
                method,
                template.format(**call.path),
                json=call.json,
                content=call.content,
                params=call.query,
                headers=headers | call.headers,
            )
            problems = judge(resp, want, head=method == "HEAD")
            ok = not problems and 200 <= resp.status_code < 300 and entry.check and resp.content
            if ok and (complaint := entry.check(m, role, rel, call, resp.json())):
                problems.append(f"leak: {complaint}")
            if problems:
                rows.append((case, _show(*want), _show(resp.status_code, _code(resp)), "; ".join(problems)))
    return rows, count


def table(rows: list[tuple[str, ...]]) -> str:
    header = ("case", "expected", "got", "problem")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@pytest.mark.invalid_frames  # the WebSocket rows send forged and malformed first messages
@pytest.mark.parametrize("key", MATRIX_KEYS)
async def test_authz_matrix(key, matrix):
    if key.startswith("WS ") or key not in EXPECTATIONS:
        if key in WEBSOCKET_CHECKS:
            rows = await WEBSOCKET_CHECKS[key](matrix)
            if rows:
                pytest.fail(f"{key}:\n" + "\n".join(rows), pytrace=False)
            return
        pytest.fail(
            f"{key} has no authorization entry: add its cases to EXPECTATIONS "
            f"(or WEBSOCKET_CHECKS for a WebSocket route), or to PUBLIC_ROUTES if it needs no token",
            pytrace=False,
        )
    assert key in route_keys(matrix.app), f"{key} is not served by the app under test"
    rows, count = await run_entry(matrix, key, EXPECTATIONS[key])
    assert count == len(CALLERS) * len(EXPECTATIONS[key].relations)
    if rows:
        pytest.fail(f"{len(rows)} of {count} cases of {key} are wrong:\n{table(rows)}", pytrace=False)
