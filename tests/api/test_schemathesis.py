"""schemathesis against a live server on SQLite: every answer matches what the document says.

The server runs in a thread with its own event loop (schemathesis and hypothesis are synchronous);
each operation is fuzzed with valid and invalid requests, as each demo role, on real ids part of
the time, and its answers checked: no 5xx, status, media type, headers and body as documented."""

import asyncio
import os
import random
import shutil
import threading
import uuid
from concurrent.futures import Future

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from liaison.app import create_app
from tests.conftest import PASSWORD, make_settings, seed_world
from tests.live import put_on_call, serve

# Per operation and mode: bounded so the whole run stays near a minute; raise it for a deeper hunt.
EXAMPLES = int(os.environ.get("LIAISON_TEST_SCHEMATHESIS_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SEEN: dict[tuple[str, str], set[int]] = {}  # what each operation answered, for the last test
CALLERS = ("a-clinician", "a-specialist", "a-coordinator", "a-org_admin", "b-specialist", "root")
# Who a route is for, most of the time (the first part of its path that matches); anyone the rest.
FOR = (
    ("/clients", "a-org_admin"),
    ("/identity-providers", "a-org_admin"),
    ("/users", "a-org_admin"),
    ("/agreements", "a-org_admin"),
    ("/escalation-policy", "a-org_admin"),
    ("/specialists", "a-coordinator"),
    ("/rosters", "a-coordinator"),
    ("/stats", "a-coordinator"),
    ("/assign", "a-coordinator"),
    ("/offers", "b-specialist"),
    ("/accept", "b-specialist"),
    ("/decline", "b-specialist"),
    ("/complete", "b-specialist"),
    ("/availability", "b-specialist"),
    ("/consults", "a-clinician"),
    ("/precall", "a-clinician"),
    ("/orgs", "root"),
)


def _operations() -> list[tuple[str, str]]:
    doc = create_app(make_settings("sqlite+aiosqlite://", None)).openapi()
    return [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops]


class Live:
    """The app under uvicorn in a thread of its own, seeded; `ids` are real ones for path parameters."""

    def __init__(self, database_url: str) -> None:
        self.settings = make_settings(database_url, None, escalation_worker=False)
        self.ready: Future = Future()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        try:
            async with serve(self.settings) as (app, netloc):
                async with httpx.AsyncClient(base_url=f"http://{netloc}") as client:
                    self.ready.set_result((f"http://{netloc}", await _seed(app, client)))
                while not self.stop.is_set():
                    await asyncio.sleep(0.05)
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
            raise


async def _seed(app, client: httpx.AsyncClient) -> dict:
    """The test world, a consult, a roster, a client and a spare user: ids that exist."""
    world = await seed_world(app, client)
    tokens = {u: await world.token(u) for u in CALLERS}

    async def post(user: str, path: str, body: dict) -> dict:
        resp = await client.post(
            f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {tokens[user]}"}
        )
        assert resp.status_code == 201, resp.text
        return resp.json()

    org = world.orgs["A"]
    # Someone on call across the agreement, so the consult below is offered (accept, decline can succeed).
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["B"],
        user_ids=[world.users["b-specialist"]],
        specialty="trauma-surgery",
    )
    consult = await post(
        "a-clinician",
        "/consults",
        {
            "specialty": "trauma-surgery",
            "urgency": "routine",
            "mode": "async",
            "question": "q?",
            "patient_ref": "p-1",
            "patient_age": 40,
            "patient_sex": "female",
        },
    )
    roster = await post("a-coordinator", "/rosters", {"specialty": "burns", "name": "burns tier 1"})
    made = await post("a-org_admin", f"/orgs/{org}/clients", {"name": "lab", "scopes": ["users:read"]})
    spare = await post(
        "a-org_admin",
        f"/orgs/{org}/users",
        {"username": "a-spare", "password": PASSWORD, "roles": ["clinician"]},
    )
    ids = {
        "org_id": str(org),
        "consult_id": consult["id"],
        "agreement_id": str(world.agreement_id),
        "roster_id": roster["id"],
        "client_id": made["id"],
        "user_id": spare["id"],  # never a caller's: a PATCH may disable it or take its roles
    }
    return {"tokens": tokens, "ids": ids}


@pytest.fixture(scope="module")
def live(sqlite_template, tmp_path_factory):
    db = tmp_path_factory.mktemp("schemathesis") / "liaison.db"
    shutil.copy(sqlite_template, db)
    server = Live(f"sqlite+aiosqlite:///{db}")
    server.thread.start()
    base, seeded = server.ready.result(timeout=120)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    yield base, seeded, schema
    server.stop.set()
    server.thread.join(timeout=30)


def _fresh_token(base: str) -> str:
    """For logout, which revokes the token it is called with."""
    resp = requests.post(f"{base}/api/v1/auth/login", json={"username": "a-clinician", "password": PASSWORD})
    resp.raise_for_status()
    return resp.json()["access_token"]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_answers_match_the_document(live, method, path):
    base, seeded, schema = live
    operation = schema[path][method]
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    rng = random.Random(f"{method} {path}")

    @settings(
        max_examples=EXAMPLES * 2,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case):
        for name, value in (case.path_parameters or {}).items():
            if name in seeded["ids"] and _is_uuid(value) and rng.random() < 0.8:
                case.path_parameters[name] = seeded["ids"][name]
        caller = _meant_for(path) if rng.random() < 0.75 else rng.choice(CALLERS)
        token = _fresh_token(base) if path.endswith("/auth/logout") else seeded["tokens"][caller]
        headers = {} if rng.random() < 0.1 else {"Authorization": f"Bearer {token}"}
        resp = case.call_and_validate(base_url=base, headers=headers, checks=CHECKS)
        SEEN.setdefault((method, path), set()).add(resp.status_code)

    fuzz()


def _meant_for(path: str) -> str:
    return next((who for part, who in FOR if part in path), "a-clinician")


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def test_the_run_got_past_the_door():
    """Not all 401s and 404s: the fuzzing reached services with real ids and accepted requests."""
    if len(SEEN) < len(_operations()):
        pytest.skip("only part of the run was selected")
    succeeded = {op for op, statuses in SEEN.items() if any(s < 300 for s in statuses)}
    print("never succeeded:", sorted(set(SEEN) - succeeded))
    assert len(succeeded) >= len(SEEN) // 2, sorted(set(SEEN) - succeeded)
    answered = set().union(*SEEN.values())
    assert {200, 201, 204, 401, 403, 404, 422} <= answered, answered
