"""Consult tests: a fast escalation worker, and a consult body to send."""

import pytest

CONSULT = {
    "specialty": "trauma-surgery",
    "urgency": "emergent",
    "mode": "live",
    "question": "Blast injury, left leg. Amputate or transfer?",
    "patient_ref": "FH2-0042",
    "patient_age": 27,
    "patient_sex": "male",
    "languages": ["en"],
}


@pytest.fixture
def settings_overrides() -> dict:
    return {"escalation_poll_seconds": 0.05}


async def set_windows(world, org: str, seconds: int) -> None:
    resp = await world.client.put(
        f"/api/v1/orgs/{world.orgs[org]}/escalation-policy",
        json={"emergent": seconds, "urgent": seconds, "routine": seconds},
        headers=await world.headers(f"{org.lower()}-org_admin"),
    )
    assert resp.status_code == 200, resp.text
