"""Serving: ranges for clips, downloads never inline or sniffable, digests checked, any node serves."""

import hashlib

import httpx
from sqlalchemy import update

from api.db import commit
from consults.attachments.models import BlobChunk
from consults.attachments.storage import DiskStore
from liaison.app import create_app
from tests.consults.attachments.conftest import CONSULT, TUS, attach, clip, create_upload, patch
from tests.live import accepted_consult

API = "/api/v1"


async def test_clips_are_downloads_served_in_ranges(app, world):
    consult = await accepted_consult(app, world, CONSULT)
    data = clip(3 * 1024 * 1024 + 7)  # spans several stored chunks
    message = await attach(world.client, consult["id"], await world.headers("a-clinician"), data, "gait.mp4")
    path = f"{API}/consults/{consult['id']}/attachments/{message['attachments'][0]['id']}/content"
    spec = await world.headers("b-specialist")
    whole = await world.client.get(path, headers=spec)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-disposition"].startswith("attachment;")
    assert (
        whole.headers["x-content-type-options"] == "nosniff"
        and "sandbox" in whole.headers["content-security-policy"]
    )
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "video/mp4"
    for asked, start, end in (
        ("bytes=10-19", 10, 20),
        (f"bytes={1024 * 1024 - 5}-{1024 * 1024 + 4}", 1024 * 1024 - 5, 1024 * 1024 + 5),  # across chunks
        ("bytes=-5", len(data) - 5, len(data)),
        (f"bytes={len(data) - 3}-", len(data) - 3, len(data)),
        (f"bytes=0-{len(data) * 2}", 0, len(data)),
    ):
        part = await world.client.get(path, headers=spec | {"Range": asked})
        assert part.content == data[start:end], asked
        if (start, end) != (0, len(data)):
            assert (
                part.status_code == 206
                and part.headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
            )
    beyond = await world.client.get(path, headers=spec | {"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.json()["code"] == "range_not_satisfiable"
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    odd = await world.client.get(path, headers=spec | {"Range": "lines=1-2"})
    assert odd.status_code == 200 and odd.content == data  # not a byte range: all of it


async def test_a_blob_that_no_longer_matches_its_digest_is_not_served(app, world):
    consult = await accepted_consult(app, world, CONSULT)
    message = await attach(
        world.client, consult["id"], await world.headers("a-clinician"), clip(5000), "gait.mp4"
    )
    meta = message["attachments"][0]
    store = app.state.attachments
    if isinstance(store, DiskStore):
        blob = store.root / "blobs" / meta["sha256"][:2] / meta["sha256"]
        raw = bytearray(blob.read_bytes())
        raw[4000] ^= 0xFF
        blob.write_bytes(bytes(raw))
    else:
        async with app.state.sessionmaker() as session:
            await session.execute(
                update(BlobChunk).where(BlobChunk.sha256 == meta["sha256"]).values(data=b"\x00" * 5000)
            )
            await commit(session)
    got = await world.client.get(
        f"{API}/consults/{consult['id']}/attachments/{meta['id']}/content",
        headers=await world.headers("a-clinician"),
    )
    assert got.status_code == 500 and got.json()["code"] == "attachment_corrupt"


async def test_an_attachment_uploaded_through_one_node_is_served_by_another(app, world):
    """Two app instances on the same database (and, embedded, the same attachments directory)."""
    consult = await accepted_consult(app, world, CONSULT)
    data = clip(2 * 1024 * 1024 + 99)
    message = await attach(world.client, consult["id"], await world.headers("a-clinician"), data, "gait.mp4")
    other = create_app(app.state.settings)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("127.0.0.1", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://node-2.test") as node2:
            login = await node2.post(
                f"{API}/auth/login", json={"username": "b-specialist", "password": "test-password-1"}
            )
            token = login.json()["access_token"]
            got = await node2.get(
                f"{API}/consults/{consult['id']}/attachments/{message['attachments'][0]['id']}/content",
                headers={"Authorization": f"Bearer {token}"},
            )
            # An upload begun on one node resumes on the other.
            clinician = await world.headers("a-clinician")
            second = clip(1024 * 1024 + 5)
            created = await create_upload(world.client, consult["id"], clinician, len(second), "cough.mp4")
            location = created.headers["Location"]
            assert (await patch(world.client, location, clinician, 0, second[:700_000])).status_code == 204
            held = await node2.head(location, headers=clinician | TUS)
            assert held.headers["upload-offset"] == "700000"
            done = await patch(node2, location, clinician, 700_000, second[700_000:])
            assert done.status_code == 204, done.text
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest()
    back = await world.client.get(
        f"{API}/consults/{consult['id']}/attachments/{done.headers['attachment-id']}/content",
        headers=clinician,
    )
    assert back.content == second
