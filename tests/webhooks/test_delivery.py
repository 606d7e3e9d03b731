"""Deliveries, verified by the Standard Webhooks library at a real receiver on loopback."""

from tests.webhooks.conftest import new_consult, on_call, register, verify


async def test_a_consults_life_reaches_the_endpoint_signed_and_in_order(app, world, receiver):
    endpoint = await register(world, receiver.url)
    await on_call(app, world)
    consult = await new_consult(world)
    accepted = await world.client.post(
        f"/api/v1/consults/{consult['id']}/accept", headers=await world.headers("b-specialist")
    )
    assert accepted.status_code == 200, accepted.text
    got = await receiver.wait(lambda g: len(g) >= 3)
    payloads = [verify(r, endpoint["secret"]) for r in got]
    assert [p["type"] for p in payloads] == ["consult.created", "consult.offered", "consult.accepted"]
    assert [p["sequence"] for p in payloads] == [1, 2, 3]
    assert all(p["data"]["consult_id"] == consult["id"] for p in payloads)
    assert "question" not in payloads[0]["data"]  # no clinical text unless the org opts in
    assert len({r.id for r in got}) == 3
