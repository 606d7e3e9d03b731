"""Registering endpoints: the secret shown once, audited writes, bad input refused with a stable
code, and — with the operator's default — no private, loopback or link-local address."""

import pytest

from tests.webhooks.conftest import FAST

PRIVATE = [
    "http://127.0.0.1:8080/hook",
    "https://127.0.0.1/hook",
    "https://10.1.2.3/hook",
    "https://192.168.0.10/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://localhost/hook",
    "ftp://8.8.8.8/hook",
    "https://user:pw@8.8.8.8/hook",
]


@pytest.fixture
def settings_overrides() -> dict:
    return FAST | {"webhooks_allow_private_addresses": False, "webhooks_worker": False}


def base(world, org: str = "A") -> str:
    return f"/api/v1/orgs/{world.orgs[org]}/webhooks"


def problem(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == code


@pytest.mark.parametrize("url", PRIVATE)
async def test_a_private_address_is_refused_by_default(world, url):
    resp = await world.client.post(
        base(world),
        json={"url": url, "event_types": ["consult.created"]},
        headers=await world.headers("a-org_admin"),
    )
    problem(resp, 422, "url_refused")


BAD_BODIES = [
    ({"url": "https://8.8.8.8/h", "event_types": ["consult.created"], "extra": 1}, "validation_error"),
    ({"url": 5, "event_types": ["consult.created"]}, "validation_error"),
    ({"url": "https://8.8.8.8/h", "event_types": "consult.created"}, "validation_error"),
    ({"url": "https://8.8.8.8/h", "event_types": ["consult.exploded"]}, "validation_error"),
    ({"url": "https://8.8.8.8/h", "event_types": []}, "validation_error"),
    (
        {"url": "https://8.8.8.8/h", "event_types": ["call.started"], "include_clinical": "yes"},
        "validation_error",
    ),
    ({"url": "https://8.8.8.8/h\x00", "event_types": ["call.started"]}, "unstorable_character"),
    (
        {"url": "https://8.8.8.8/h", "event_types": ["call.started"], "description": "a\x00b"},
        "unstorable_character",
    ),
    ({"url": "https://8.8.8.8/" + "h" * 3000, "event_types": ["call.started"]}, "validation_error"),
    ([], "validation_error"),
]


@pytest.mark.parametrize(("body", "code"), BAD_BODIES)
async def test_bad_input_is_a_4xx_problem(world, body, code):
    headers = await world.headers("a-org_admin")
    problem(await world.client.post(base(world), json=body, headers=headers), 422, code)


async def test_a_huge_body_is_refused(world):
    body = {"url": "https://8.8.8.8/h", "event_types": ["call.started"], "description": "x" * 2_000_000}
    resp = await world.client.post(base(world), json=body, headers=await world.headers("a-org_admin"))
    problem(resp, 413, "body_too_large")


async def test_bad_patches_are_refused(world):
    headers = await world.headers("a-org_admin")
    # A public address literal (documentation ranges are not global): it is never contacted, as
    # this module runs no worker, and a literal is not looked up through DNS.
    made = await world.client.post(
        base(world), json={"url": "https://8.8.8.8/h", "event_types": ["call.started"]}, headers=headers
    )
    assert made.status_code == 201, made.text
    one = f"{base(world)}/{made.json()['id']}"
    for body in (
        {"enabled": "no"},
        {"secret": "mine"},
        {"event_types": None, "x": 1},
        {"url": "https://10.0.0.1/"},
    ):
        resp = await world.client.patch(one, json=body, headers=headers)
        assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json", body
    problem(await world.client.get(f"{base(world)}/not-a-uuid", headers=headers), 422, "validation_error")


async def test_lifecycle_is_audited_and_the_secret_is_shown_once(world):
    headers = await world.headers("a-org_admin")
    made = await world.client.post(
        base(world),
        json={"url": "https://8.8.8.8/h", "event_types": ["call.started", "call.ended"]},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"] is True
    one = f"{base(world)}/{endpoint['id']}"
    listed = (await world.client.get(base(world), headers=headers)).json()
    read = (await world.client.get(one, headers=headers)).json()
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in read and all("secret" not in e for e in listed)
    patched = await world.client.patch(
        one, json={"enabled": False, "include_clinical": True}, headers=headers
    )
    assert patched.json()["enabled"] is False and patched.json()["include_clinical"] is True
    rotated = await world.client.post(f"{one}/secret", headers=headers)
    assert rotated.json()["secret"] != endpoint["secret"]
    assert (await world.client.delete(one, headers=headers)).status_code == 204
    problem(await world.client.get(one, headers=headers), 404, "webhook_not_found")
    trail = (
        await world.client.get("/api/v1/audit", params={"resource_type": "webhook"}, headers=headers)
    ).json()
    actions = {row["action"] for row in trail["items"]}
    expected = {"webhook.create", "webhook.list", "webhook.read", "webhook.disable", "webhook.rotate_secret"}
    assert expected | {"webhook.delete"} <= actions


async def test_another_orgs_admin_and_non_admins_are_kept_out(world):
    headers = await world.headers("a-org_admin")
    made = await world.client.post(
        base(world), json={"url": "https://8.8.8.8/h", "event_types": ["call.started"]}, headers=headers
    )
    one = f"{base(world)}/{made.json()['id']}"
    problem(await world.client.get(one, headers=await world.headers("b-org_admin")), 404, "not_found")
    theirs = f"{base(world, 'B')}/{made.json()['id']}"
    problem(
        await world.client.get(theirs, headers=await world.headers("b-org_admin")), 404, "webhook_not_found"
    )
    problem(
        await world.client.get(one, headers=await world.headers("a-coordinator")), 403, "permission_denied"
    )
