"""Every write route of the OpenAPI document × the inputs that used to answer 500 or be coerced, on
SQLite and PostgreSQL: a NUL or lone surrogate in any string (value or key), nesting 900 deep, a
string for a boolean, a string or a fraction for an integer, an epoch number for a date-time.

The routes and their fields come from the served document, so a new route or field is covered
without editing this file; each answer must be the 422 with its stable code, and none a 500."""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from tests.api.test_bad_input import snapshot

MISSING = "00000000-0000-4000-8000-000000000000"
CALLERS = ("a-org_admin", "a-coordinator", "a-clinician", "a-specialist", "root")
WRITES = ("post", "put", "patch", "delete")
DEEP = 900


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: bytes
    code: str  # the problem code expected
    field: tuple[str, ...] | None = None  # where the schema error must be reported (strict types)

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path} {self.code} {self.field or ''}"


def resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def variants(doc: dict, schema: dict) -> list[dict]:
    """The alternatives a value may take (an optional field is anyOf [X, null])."""
    schema = resolve(doc, schema)
    if "anyOf" in schema:
        return [v for s in schema["anyOf"] for v in variants(doc, s)]
    return [schema]


def json_routes(doc: dict) -> Iterator[tuple[str, str, dict]]:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {})
            if method in WRITES and "application/json" in content:
                yield method, path, resolve(doc, content["application/json"]["schema"])


def field_cases(doc: dict, method: str, path: str, schema: dict) -> Iterator[Case]:
    """One body per property and hostile value; the rest of the body left out (its errors do not
    matter: the shared check runs first, and a strict-type error is looked for at its own place)."""
    for name, prop in schema.get("properties", {}).items():
        for v in variants(doc, prop):
            kind, fmt = v.get("type"), v.get("format")
            if kind == "string" and fmt == "date-time":
                yield Case(
                    method,
                    path,
                    json.dumps({name: 1_700_000_000}).encode(),
                    "validation_error",
                    ("body", name),
                )
            elif kind == "string":
                yield Case(method, path, json.dumps({name: "a\u0000b"}).encode(), "unstorable_character")
                yield Case(method, path, b'{"%s": "a\\ud800b"}' % name.encode(), "unstorable_character")
            elif kind == "boolean":
                for loose in ("yes", "true", 1):
                    yield Case(
                        method, path, json.dumps({name: loose}).encode(), "validation_error", ("body", name)
                    )
            elif kind == "integer":
                for loose in ("5", 5.5):
                    yield Case(
                        method, path, json.dumps({name: loose}).encode(), "validation_error", ("body", name)
                    )
            elif kind == "array":
                yield Case(method, path, json.dumps({name: ["a\u0000"]}).encode(), "unstorable_character")
            elif kind == "object":
                yield Case(method, path, json.dumps({name: {"k\u0000": 1}}).encode(), "unstorable_character")
                deep = "[" * DEEP + "]" * DEEP
                yield Case(
                    method, path, b'{"%s": {"x": %s}}' % (name.encode(), deep.encode()), "nesting_too_deep"
                )
    # Whatever the fields: deep nesting and NUL keys are refused before anything else reads them.
    nested = '{"a": ' * DEEP + "1" + "}" * DEEP
    yield Case(method, path, b'{"zz": %s}' % nested.encode(), "nesting_too_deep")
    yield Case(method, path, json.dumps({"\u0000": "x"}).encode(), "unstorable_character")


def all_cases(doc: dict) -> list[Case]:
    return [c for method, path, schema in json_routes(doc) for c in field_cases(doc, method, path, schema)]


def fill(path: str, world) -> str:
    """Path ids: org A's where an org is named, a well-formed id of nothing elsewhere (validation comes first)."""
    out = path.replace("{org_id}", str(world.orgs["A"]))
    while "{" in out:
        start = out.index("{")
        out = out[:start] + MISSING + out[out.index("}", start) + 1 :]
    return out


async def caller_for(world, case: Case, cache: dict) -> dict:
    """The first caller the route lets through to validation (the rest answer 401/403 before it)."""
    key = (case.method, case.path)
    if key not in cache:
        cache[key] = {}
        for username in CALLERS:
            headers = await world.headers(username)
            resp = await world.client.request(
                case.method, fill(case.path, world), content=b"{}", headers=headers | JSON
            )
            if resp.status_code not in (401, 403):
                cache[key] = headers
                break
    return cache[key]


JSON = {"content-type": "application/json"}


async def test_the_matrix_covers_every_json_write_route(client):
    doc = (await client.get("/openapi.json")).json()
    routes = {(m, p) for m, p, _ in json_routes(doc)}
    assert len(routes) >= 20, routes  # the document lists them; a broken walk would find none
    covered = {(c.method, c.path) for c in all_cases(doc)}
    assert covered == routes
    kinds = {c.code for c in all_cases(doc)}
    assert kinds == {"unstorable_character", "nesting_too_deep", "validation_error"}


async def test_every_write_route_refuses_every_hostile_input(app, world, client):
    doc = (await client.get("/openapi.json")).json()
    before, cache, failures = await snapshot(app), {}, []
    for case in all_cases(doc):
        headers = await caller_for(world, case, cache)
        resp = await world.client.request(
            case.method, fill(case.path, world), content=case.body, headers=headers | JSON
        )
        if resp.status_code >= 500 or not _as_expected(resp, case):
            failures.append(f"{case}: {resp.status_code} {resp.text[:300]}")
    assert not failures, "\n".join(failures)
    assert await snapshot(app) == before  # nothing written by any of them


def _as_expected(resp, case: Case) -> bool:
    if resp.status_code != 422 or resp.headers["content-type"] != "application/problem+json":
        return False
    body = resp.json()
    if body["code"] != case.code:
        return False
    return case.field is None or any(tuple(e["loc"][:2]) == case.field for e in body.get("errors", []))


# --- the routes that are not JSON, and the answers that used to tell too much --------------------------------


async def test_nul_on_login_is_422_not_a_database_error(world):
    for body in (
        {"username": "a\u0000b", "password": "x"},
        {"username": "a-clinician", "password": "p\u0000"},
    ):
        resp = await world.client.post("/api/v1/auth/login", json=body)
        assert resp.status_code == 422 and resp.json()["code"] == "unstorable_character", resp.text


async def test_hostile_form_on_the_token_route(world):
    cases = [
        ({"grant_type": "client_credentials", "client_id": "a\u0000b", "client_secret": "x"}, 401),
        ({"grant_type": "client_credentials\u0000", "client_id": MISSING}, 400),
        ({"grant_type": "client_credentials", **{f"f{i}": "1" for i in range(11)}}, 400),
        (
            {"grant_type": "client_credentials", "client_id": str(uuid.uuid4()), "client_secret": "\ud800"},
            401,
        ),
    ]
    for form, status in cases:
        body = "&".join(f"{k}={v}" for k, v in form.items()).encode("utf-8", "surrogatepass")
        resp = await world.client.post(
            "/api/v1/auth/token", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert resp.status_code == status, (form, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"


async def test_duplicates_are_409_and_other_orgs_usernames_stay_unknown(app, world):
    admin, users = await world.headers("a-org_admin"), f"/api/v1/orgs/{world.orgs['A']}/users"
    resp = await world.client.post(
        users, json={"username": "a-clinician", "password": "long-enough-pw"}, headers=admin
    )
    assert resp.status_code == 409 and resp.json()["code"] == "username_taken", resp.text
    # b-clinician is org B's: in org A the name is free, so the answer cannot tell that B has it.
    resp = await world.client.post(
        users, json={"username": "b-clinician", "password": "long-enough-pw"}, headers=admin
    )
    assert resp.status_code == 201, resp.text
    root = await world.headers("root")
    resp = await world.client.post("/api/v1/orgs", json={"name": "Org Z", "kind": "ngo"}, headers=root)
    assert resp.status_code == 201, resp.text
    again = await world.client.post("/api/v1/orgs", json={"name": "Org Z", "kind": "ngo"}, headers=root)
    assert again.status_code == 409 and again.json()["code"] == "name_taken", again.text


async def test_namesakes_in_two_orgs_each_sign_in_with_their_own_password(world):
    admin = await world.headers("a-org_admin")
    made = await world.client.post(
        f"/api/v1/orgs/{world.orgs['A']}/users",
        json={"username": "b-clinician", "password": "org-a-password", "roles": ["clinician"]},
        headers=admin,
    )
    assert made.status_code == 201
    login = "/api/v1/auth/login"
    mine = await world.client.post(login, json={"username": "b-clinician", "password": "org-a-password"})
    assert mine.status_code == 200
    me = await world.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {mine.json()['access_token']}"}
    )
    assert me.json()["org_id"] == str(world.orgs["A"])
    theirs = await world.client.post(login, json={"username": "b-clinician", "password": "test-password-1"})
    assert theirs.status_code == 200  # org B's b-clinician, unaffected by A's namesake
    scoped = await world.client.post(
        login, json={"username": "b-clinician", "password": "test-password-1", "org_id": str(world.orgs["A"])}
    )
    assert scoped.status_code == 401  # in org A that is not the password
