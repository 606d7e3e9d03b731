"""The platform admin creates organizations and their first admin, and nothing inside an org: it
sets no password, disables nobody, cannot sign in as anyone it did not create, reads no consult."""

import pytest

from tests.consults.conftest import CONSULT

API = "/api/v1"


async def new_org(world) -> str:
    resp = await world.client.post(
        f"{API}/orgs",
        json={"name": "Field Hospital 7", "kind": "military"},
        headers=await world.headers("root"),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def user(name: str, *roles: str) -> dict:
    return {"username": name, "password": "first-admin-pw-1", "roles": list(roles)}


async def test_creates_an_org_and_its_first_admin_then_no_one_else(app, world):
    org, root = await new_org(world), await world.headers("root")
    wrong_role = await world.client.post(
        f"{API}/orgs/{org}/users", json=user("fh7-doc", "clinician"), headers=root
    )
    assert (wrong_role.status_code, wrong_role.json()["code"]) == (403, "first_admin_only")
    first = await world.client.post(
        f"{API}/orgs/{org}/users", json=user("fh7-admin", "org_admin"), headers=root
    )
    assert first.status_code == 201, first.text
    second = await world.client.post(
        f"{API}/orgs/{org}/users", json=user("fh7-admin2", "org_admin"), headers=root
    )
    assert (second.status_code, second.json()["code"]) == (403, "first_admin_only")
    # From here the org's own admin manages its users.
    admin = await world.login("fh7-admin", "first-admin-pw-1")
    own = await world.client.post(
        f"{API}/orgs/{org}/users",
        json=user("fh7-doc", "clinician"),
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    )
    assert own.status_code == 201, own.text


async def test_an_org_without_an_active_admin_can_be_given_one(app, world):
    org, root = await new_org(world), await world.headers("root")
    first = await world.client.post(
        f"{API}/orgs/{org}/users", json=user("fh7-admin", "org_admin"), headers=root
    )
    admin = await world.login("fh7-admin", "first-admin-pw-1")
    gone = await world.client.patch(
        f"{API}/orgs/{org}/users/{first.json()['id']}",
        json={"is_active": False},
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    )
    assert gone.status_code == 200, gone.text
    again = await world.client.post(
        f"{API}/orgs/{org}/users", json=user("fh7-admin2", "org_admin"), headers=root
    )
    assert again.status_code == 201, again.text  # an org that locked itself out is not lost


@pytest.mark.parametrize(
    "patch", [{"password": "taken-over-pw-1"}, {"is_active": False}, {"roles": ["clinician", "org_admin"]}]
)
async def test_changes_no_user_of_an_org(app, world, patch):
    resp = await world.client.patch(
        f"{API}/orgs/{world.orgs['A']}/users/{world.users['a-clinician']}",
        json=patch,
        headers=await world.headers("root"),
    )
    assert (resp.status_code, resp.json()["code"]) == (403, "permission_denied")
    if "password" in patch:  # and so cannot sign in as them
        login = await world.client.post(
            f"{API}/auth/login", json={"username": "a-clinician", "password": patch["password"]}
        )
        assert login.status_code == 401
    me = await world.client.get(f"{API}/me", headers=await world.headers("a-clinician"))
    assert me.status_code == 200 and me.json()["roles"] == ["clinician"]


async def test_adds_no_user_to_an_org_that_has_an_admin(app, world):
    root = await world.headers("root")
    for roles in (["org_admin"], ["clinician"]):
        resp = await world.client.post(
            f"{API}/orgs/{world.orgs['A']}/users", json=user("sleeper-1", *roles), headers=root
        )
        assert (resp.status_code, resp.json()["code"]) == (403, "first_admin_only")
    listed = await world.client.get(f"{API}/orgs/{world.orgs['A']}/users", headers=root)
    assert listed.status_code == 403


async def test_reads_no_consult(app, world):
    cid = (
        await world.client.post(f"{API}/consults", json=CONSULT, headers=await world.headers("a-clinician"))
    ).json()["id"]
    root = await world.headers("root")
    assert (await world.client.get(f"{API}/consults/{cid}", headers=root)).status_code == 404
    listed = await world.client.get(f"{API}/consults", headers=root)
    assert listed.status_code == 200 and cid not in listed.text
    assert (await world.client.get(f"{API}/consults/{cid}/messages", headers=root)).status_code == 404
