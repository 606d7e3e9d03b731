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

Each case builds its own fresh state (agreements in the right status, unique names), so cases do
not depend on each other. The world is rebuilt per route, not per case, to keep the runtime down;
every mismatch of a route is collected and reported together as a table.

Beyond the status, every refusal must be application/problem+json with the expected `code`, every
404 must be exactly the "missing" answer (so ids do not leak), nothing may answer 500, and the
successful answers of list and read routes are checked for rows of orgs the caller may not see.
"""

import base64
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any, AsyncIterator, Awaitable, Callable

import fastapi.routing
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import WebSocketRoute

from agreements.models import Agreement
from api.app import create_app
from auth.models import IdentityProvider
from tests.conftest import World, make_settings

API = "/api/v1"

# Routes that need no token, so have no authorization matrix. Everything else is in EXPECTATIONS.
PUBLIC_ROUTES = frozenset({
    "GET /openapi.json", "GET /docs", "GET /docs/oauth2-redirect", "GET /redoc",  # the OpenAPI document and its viewers
    "GET /healthz", "GET /readyz", "GET /metrics",  # operations
    f"POST {API}/auth/login", f"POST {API}/auth/refresh", f"POST {API}/auth/token",  # how one gets a token
})

CALLERS = {  # role -> username (all of org A but root, who is in org Ops)
    "clinician": "a-clinician", "specialist": "a-specialist", "coordinator": "a-coordinator",
    "org_admin": "a-org_admin", "platform_admin": "root", "anonymous": None,
}
TARGETED = ("same", "partner", "other", "missing")
UNTARGETED = ("-",)
ORG_OF = {"same": "A", "partner": "B", "other": "C"}

# The code each refusal carries unless an entry says otherwise.
DEFAULT_CODES = {401: "invalid_token", 403: "permission_denied", 404: "not_found"}
# Another org's resource answers exactly as a missing one does (auth.exceptions.Hidden).
HIDDEN = {"type": "/problems/not_found", "title": "Not found", "status": 404, "detail": "Not found", "code": "not_found"}

Outcome = int | tuple[int, str]  # a status, or a status and the problem `code`


# --- the test's own view of the world -------------------------------------------------------------


@cache
def jwks() -> dict:
    """A public RSA JWK made here, for identity providers."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return {"keys": [{"kty": "RSA", "kid": "matrix-1", "alg": "RS256", "use": "sig", "n": b64(numbers.n), "e": b64(numbers.e)}]}


@dataclass
class Matrix:
    world: World
    app: FastAPI
    client: httpx.AsyncClient  # answers a crash with its 500 instead of raising, so it lands in the table
    idps: dict[str, uuid.UUID] = field(default_factory=dict)  # org key -> an identity provider of it
    bc_agreement: uuid.UUID | None = None  # B -> C, active: A is not a party
    _n: itertools.count = field(default_factory=itertools.count)

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
            idp = IdentityProvider(org_id=self.world.orgs[org_key], issuer=f"https://{self.unique('idp')}.example",
                                   audience="liaison-matrix", jwks=jwks())
            session.add(idp)
            await session.commit()
            return idp.id

    async def add_agreement(self, requesting: str, providing: str, *, status: str, proposed_by: str,
                            suspended_by: str | None = None) -> uuid.UUID:
        now = datetime.now(timezone.utc)
        async with self.app.state.sessionmaker() as session:
            agreement = Agreement(
                requesting_org_id=self.world.orgs[requesting], providing_org_id=self.world.orgs[providing],
                specialties=["trauma-surgery"], valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=30),
                status=status, proposed_by_org_id=self.world.orgs[proposed_by],
                suspended_by_org_id=self.world.orgs[suspended_by] if suspended_by else None,
                created_by=self.world.users[f"{proposed_by.lower()}-org_admin"])
            session.add(agreement)
            await session.commit()
            return agreement.id

    async def agreement(self, rel: str, status: str) -> uuid.UUID:
        """A fresh agreement: `same` proposed by A to B, `partner` proposed by B to A, `other` B to C.
        A suspended one was suspended by its proposer."""
        parties = {"same": ("A", "B"), "partner": ("B", "A"), "other": ("B", "C")}
        if rel not in parties:
            return uuid.uuid4()
        requesting, providing = parties[rel]
        return await self.add_agreement(requesting, providing, status=status, proposed_by=requesting,
                                        suspended_by=requesting if status == "suspended" else None)


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


Builder = Callable[[Matrix, str, str], Awaitable[Call]]
Check = Callable[[Matrix, str, str, Call, Any], str | None]  # a successful answer's leak check: a complaint or None


@dataclass(frozen=True)
class Entry:
    build: Builder
    expect: dict[str, Outcome | dict[str, Outcome]]  # role (or "*") -> outcome, or relation (or "*") -> outcome
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
    return Call({"org_id": m.org(rel)}, {"issuer": f"https://{m.unique('issuer')}.example", "audience": "liaison-matrix",
                                         "jwks": jwks()})


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
    return Call({"org_id": m.org(rel)}, {"username": m.unique("user"), "password": "matrix-password-1",
                                         "roles": ["clinician"]})


async def rename_user(m: Matrix, role: str, rel: str) -> Call:
    if rel == "mixed":  # A's org id, B's user
        return Call({"org_id": m.org("same"), "user_id": m.user("partner")}, {"display_name": m.unique("name")})
    return Call({"org_id": m.org(rel), "user_id": m.user(rel)}, {"display_name": m.unique("name")})


async def new_proposal(m: Matrix, role: str, rel: str) -> Call:
    """`same`: A asks B; `partner`: B asks A (A as the provider); `other`: B asks C (A is no party)."""
    requesting, providing = {"same": ("A", "B"), "partner": ("B", "A"), "other": ("B", "C")}[rel]
    now = datetime.now(timezone.utc)
    return Call(json={"requesting_org_id": str(m.world.orgs[requesting]), "providing_org_id": str(m.world.orgs[providing]),
                      "specialties": ["cardiology"], "valid_from": now.isoformat(),
                      "valid_until": (now + timedelta(days=30)).isoformat()})


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
    wrong = [(e["seq"], e["action"], e["org_id"]) for e in body["items"] if mine not in (e["org_id"], e["actor_org_id"])]
    return f"events of other orgs: {wrong[:3]}" if wrong else None


EXPECTATIONS: dict[str, Entry] = {
    # auth: any signed-in caller
    f"POST {API}/auth/logout": Entry(sign_out, {"*": 204}, UNTARGETED),
    f"GET {API}/me": Entry(nothing, {"*": 200}, UNTARGETED, check=is_caller),
    # an org's integration clients and identity providers: its own admin only (not the platform admin)
    f"POST {API}/orgs/{{org_id}}/clients": Entry(new_client, {"org_admin": own_org(201), "*": 403},
                                                 check=created_in_target_org),
    f"GET {API}/orgs/{{org_id}}/clients": Entry(org_only, {"org_admin": own_org(200), "*": 403}, check=rows_of_target_org),
    f"POST {API}/orgs/{{org_id}}/identity-providers": Entry(new_idp, {"org_admin": own_org(201), "*": 403},
                                                            check=created_in_target_org),
    f"GET {API}/orgs/{{org_id}}/identity-providers": Entry(org_only, {"org_admin": own_org(200), "*": 403},
                                                           check=rows_of_target_org),
    f"POST {API}/orgs/{{org_id}}/identity-providers/{{idp_id}}/links": Entry(
        new_link, {"org_admin": own_org(201), "*": 403}, LINK_RELATIONS, check=is_target("idp_id", "idp_id")),
    # organizations: the platform admin creates them; the directory is open to every signed-in caller
    f"POST {API}/orgs": Entry(new_org, {"platform_admin": 201, "*": 403}, UNTARGETED),
    f"GET {API}/orgs": Entry(nothing, {"*": 200}, UNTARGETED),
    f"GET {API}/orgs/{{org_id}}": Entry(org_only, {"*": {"missing": 404, "*": 200}}, check=is_target("org_id")),
    # users: the org's own admin (coordinators read), and the platform admin for any org
    f"POST {API}/orgs/{{org_id}}/users": Entry(
        new_user, {"org_admin": own_org(201), "platform_admin": {"missing": 404, "*": 201}, "*": 403},
        check=created_in_target_org),
    f"GET {API}/orgs/{{org_id}}/users": Entry(
        org_only, {"org_admin": own_org(200), "coordinator": own_org(200), "platform_admin": {"missing": 404, "*": 200},
                   "*": 403}, check=rows_of_target_org),
    f"PATCH {API}/orgs/{{org_id}}/users/{{user_id}}": Entry(
        rename_user, {"org_admin": own_org(200), "*": 403,
                      "platform_admin": {"missing": 404, "mixed": 404, "*": 200}},
        TARGETED + ("mixed",), check=is_target("user_id")),
    # agreements: an org admin of a party manages, coordinators read; nobody else, not even the platform admin
    f"POST {API}/agreements": Entry(
        new_proposal, {"org_admin": {"same": 201, "partner": 201, "other": (422, "not_a_party")}, "*": 403},
        ("same", "partner", "other"), check=lambda m, role, rel, call, body: agreements_of_caller(
            m, role, rel, call, {"items": [body]})),
    f"GET {API}/agreements": Entry(nothing, {"org_admin": 200, "coordinator": 200, "*": 403}, UNTARGETED,
                                   check=agreements_of_caller),
    f"GET {API}/agreements/{{agreement_id}}": Entry(
        existing_agreement, {"org_admin": {"same": 200, "partner": 200, "*": 404},
                             "coordinator": {"same": 200, "partner": 200, "*": 404}, "*": 403},
        check=is_target("agreement_id")),
    # accept a proposal: the other party only, so A's own proposal is a conflict
    f"POST {API}/agreements/{{agreement_id}}/accept": Entry(
        agreement_in("proposed"), {"org_admin": {"same": (409, "wrong_party"), "partner": 200, "*": 404}, "*": 403},
        check=is_target("agreement_id")),
    f"POST {API}/agreements/{{agreement_id}}/suspend": Entry(
        agreement_in("active"), {"org_admin": {"same": 200, "partner": 200, "*": 404}, "*": 403},
        check=is_target("agreement_id")),
    # resume: only the party that suspended (here: the proposer), so B's suspension is a conflict for A
    f"POST {API}/agreements/{{agreement_id}}/resume": Entry(
        agreement_in("suspended"), {"org_admin": {"same": 200, "partner": (409, "wrong_party"), "*": 404}, "*": 403},
        check=is_target("agreement_id")),
    f"POST {API}/agreements/{{agreement_id}}/revoke": Entry(
        agreement_in("active"), {"org_admin": {"same": 200, "partner": 200, "*": 404}, "*": 403},
        check=is_target("agreement_id")),
    # audit: the org admin reads their org's events, the platform admin all
    f"GET {API}/audit": Entry(audit_after_other_orgs_acted, {"org_admin": 200, "platform_admin": 200, "*": 403},
                              UNTARGETED, check=audit_of_caller),
}

# WebSocket routes (and mounts) under /api/v1, keyed "WS <path>": an async check (matrix) -> list of mismatch lines.
WEBSOCKET_CHECKS: dict[str, Callable[[Matrix], Awaitable[list[str]]]] = {}


# --- the route table ----------------------------------------------------------------------------------


def route_keys(app: FastAPI) -> list[str]:
    """"METHOD /path" of every HTTP route the app serves, "WS /path" of every WebSocket route, and
    "<KIND> /path" of anything else (a mount): included routers flattened."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI >= 0.137.2 includes routers lazily
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


ALL_KEYS = route_keys(_collection_app())
MATRIX_KEYS = [k for k in ALL_KEYS if k not in PUBLIC_ROUTES]


def test_route_table_is_covered():
    missing = [k for k in MATRIX_KEYS if k not in EXPECTATIONS and k not in WEBSOCKET_CHECKS]
    stale = [k for k in (*EXPECTATIONS, *WEBSOCKET_CHECKS, *PUBLIC_ROUTES) if k not in ALL_KEYS]
    both = [k for k in PUBLIC_ROUTES if k in EXPECTATIONS]
    unprefixed = [k for k in MATRIX_KEYS if not k.split(" ", 1)[1].startswith(API + "/")]
    problems = [f"route without an authorization entry (add it to EXPECTATIONS, or PUBLIC_ROUTES if it needs no token): {k}"
                for k in missing]
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


def judge(resp: httpx.Response, want: tuple[int, str | None]) -> list[str]:
    """What is wrong with this answer, if anything."""
    problems = []
    status, code = want
    if resp.status_code >= 500:
        problems.append("server error")
    elif resp.status_code != status:
        problems.append("status")
    if resp.status_code >= 400:
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
            resp = await m.client.request(method, template.format(**call.path), json=call.json, params=call.query,
                                        headers=headers)
            problems = judge(resp, want)
            if not problems and 200 <= resp.status_code < 300 and entry.check and resp.content:
                if complaint := entry.check(m, role, rel, call, resp.json()):
                    problems.append(f"leak: {complaint}")
            if problems:
                rows.append((case, _show(*want), _show(resp.status_code, _code(resp)), "; ".join(problems)))
    return rows, count


def table(rows: list[tuple[str, ...]]) -> str:
    header = ("case", "expected", "got", "problem")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@pytest.mark.parametrize("key", MATRIX_KEYS)
async def test_authz_matrix(key, matrix):
    if key.startswith("WS ") or key not in EXPECTATIONS:
        if key in WEBSOCKET_CHECKS:
            rows = await WEBSOCKET_CHECKS[key](matrix)
            if rows:
                pytest.fail(f"{key}:\n" + "\n".join(rows), pytrace=False)
            return
        pytest.fail(f"{key} has no authorization entry: add its cases to EXPECTATIONS "
                    f"(or WEBSOCKET_CHECKS for a WebSocket route), or to PUBLIC_ROUTES if it needs no token",
                    pytrace=False)
    assert key in route_keys(matrix.app), f"{key} is not served by the app under test"
    rows, count = await run_entry(matrix, key, EXPECTATIONS[key])
    assert count == len(CALLERS) * len(EXPECTATIONS[key].relations)
    if rows:
        pytest.fail(f"{len(rows)} of {count} cases of {key} are wrong:\n{table(rows)}", pytrace=False)
