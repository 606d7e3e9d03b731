"""Resumable uploads (tus): cut links resume from what the server holds; pieces are never stored twice."""

import asyncio
import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from api.db import commit
from consults.attachments.models import Piece, Upload
from tests.consults.attachments.conftest import CONSULT, TUS, clip, create_upload, metadata, patch
from tests.live import accepted_consult, http, live_world


async def _cut_patch(host: str, path: str, token: str, offset: int, data: bytes, cut: int) -> None:
    """A PATCH that announces all of `data` but whose link dies after `cut` bytes."""
    hostname, port = host.split(":")
    reader, writer = await asyncio.open_connection(hostname, int(port))
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n"
        f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data[:cut])
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _settled_offset(client, path: str, headers: dict) -> int:
    """The server's offset once it has stopped moving (the cut request's handler may still be writing)."""
    last = None
    while True:
        resp = await client.head(path, headers=headers | TUS)
        assert resp.status_code == 200, resp.status_code
        offset = int(resp.headers["upload-offset"])
        if offset == last:
            return offset
        last = offset
        await asyncio.sleep(0.3)


async def test_an_upload_cut_ten_times_resumes_and_matches_its_digest(env, tmp_path):
    data = clip(3 * 1024 * 1024 + 12345)
    rng = random.Random(15)
    async with live_world(env, attachments_path=str(tmp_path / "att")) as (app, host, world):
        consult = await accepted_consult(app, world, CONSULT)
        headers = await world.headers("a-clinician")
        token = await world.token("a-clinician")
        async with http(host) as client:
            created = await create_upload(client, consult["id"], headers, len(data), "auscultation.mp4")
            path = created.headers["Location"]
            offsets = []
            for _ in range(10):
                offset = await _settled_offset(client, path, headers)
                offsets.append(offset)
                cut = rng.randrange(1, len(data) - offset)
                await _cut_patch(host, path, token, offset, data[offset:], cut)
            offset = await _settled_offset(client, path, headers)
            for _ in range(5):  # the last cut's handler may still move the offset: ask again on a 409
                done = await patch(client, path, headers, offset, data[offset:])
                if done.status_code != 409:
                    break
                offset = await _settled_offset(client, path, headers)
            assert done.status_code == 204, done.text
            assert offsets == sorted(offsets) and offsets[-1] > 0  # it resumed, never restarted
            aid = done.headers["attachment-id"]
            got = await client.get(
                f"/api/v1/consults/{consult['id']}/attachments/{aid}/content", headers=headers
            )
            assert got.status_code == 200
            assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest()
            meta = await client.get(f"/api/v1/consults/{consult['id']}/attachments", headers=headers)
            assert meta.json()["items"][0]["sha256"] == hashlib.sha256(data).hexdigest()


async def test_a_retried_piece_is_refused_not_stored_twice(app, world):
    consult = await accepted_consult(app, world, CONSULT)
    headers = await world.headers("a-clinician")
    data = clip(5000)
    created = await create_upload(world.client, consult["id"], headers, len(data), "gait.mp4")
    path = created.headers["Location"]
    first = await patch(world.client, path, headers, 0, data[:3000])
    assert first.status_code == 204 and first.headers["upload-offset"] == "3000"
    for _ in range(3):
        again = await patch(world.client, path, headers, 0, data[:3000])
        assert again.status_code == 409 and again.json()["code"] == "upload_offset_mismatch"
        assert again.json()["upload_offset"] == 3000
    async with app.state.sessionmaker() as session:
        held = (await session.execute(select(func.sum(Piece.size)))).scalar()
    assert held == 3000
    rest = await patch(world.client, path, headers, 3000, data[3000:])
    assert rest.status_code == 204 and rest.headers["upload-offset"] == "5000"
    late = await patch(world.client, path, headers, 3000, data[3000:])
    assert late.status_code == 409


async def test_tus_headers_and_bad_input(app, world):
    consult = await accepted_consult(app, world, CONSULT)
    cid, headers = consult["id"], await world.headers("a-clinician")
    base = f"/api/v1/consults/{cid}/uploads"
    options = await world.client.options(base, headers=headers)
    assert options.status_code == 204 and "termination" in options.headers["tus-extension"]
    bad = [
        (headers | {"Tus-Resumable": "0.2.2", "Upload-Length": "10"}, 412, "tus_version_unsupported"),
        (headers | TUS | {"Upload-Length": "ten"}, 422, "invalid_upload_header"),
        (headers | TUS | {"Upload-Length": "-1"}, 422, "invalid_upload_header"),
        (headers | TUS, 422, "invalid_upload_header"),
        (
            headers | TUS | {"Upload-Length": "10", "Upload-Metadata": "filename !!!"},
            422,
            "invalid_upload_header",
        ),
        (
            headers | TUS | {"Upload-Length": "10", "Upload-Metadata": metadata("a\x00.jpg")},
            422,
            "invalid_upload_header",
        ),
        (headers | TUS | {"Upload-Length": str(10**14)}, 413, "attachment_too_large"),
    ]
    for sent, status, code in bad:
        resp = await world.client.post(base, headers=sent)
        assert (resp.status_code, resp.json()["code"]) == (status, code), (sent, resp.text)
    created = await create_upload(world.client, cid, headers, 3000, "gait.mp4")
    path = created.headers["Location"]
    wrong_type = await world.client.patch(
        path, content=b"x", headers=headers | TUS | {"Upload-Offset": "0", "Content-Type": "application/json"}
    )
    assert wrong_type.status_code == 415 and wrong_type.json()["code"] == "unsupported_media_type"
    bad_offset = await world.client.patch(
        path,
        content=b"x",
        headers=headers | TUS | {"Upload-Offset": "x", "Content-Type": "application/offset+octet-stream"},
    )
    assert bad_offset.status_code == 422
    past = await patch(world.client, path, headers, 0, clip(3001))
    assert past.status_code == 413 and past.json()["code"] == "attachment_too_large"
    other = await world.client.head(path, headers=await world.headers("b-specialist") | TUS)
    assert other.status_code == 404  # an upload is its uploader's until it is posted
    missing = await world.client.head(f"{base}/{uuid.uuid4()}", headers=headers | TUS)
    assert missing.status_code == 404


async def test_termination_and_expiry_drop_the_bytes(app, world):
    consult = await accepted_consult(app, world, CONSULT)
    cid, headers = consult["id"], await world.headers("a-clinician")
    created = await create_upload(world.client, cid, headers, 4000, "gait.mp4")
    path = created.headers["Location"]
    assert "upload-expires" in {k.lower() for k in created.headers}
    assert (await patch(world.client, path, headers, 0, clip(4000)[:2000])).status_code == 204
    gone = await world.client.delete(path, headers=headers | TUS)
    assert gone.status_code == 204
    assert (await world.client.head(path, headers=headers | TUS)).status_code == 404
    abandoned = (await create_upload(world.client, cid, headers, 4000, "gait.mp4")).headers["Location"]
    assert (await patch(world.client, abandoned, headers, 0, clip(4000)[:2000])).status_code == 204
    async with app.state.sessionmaker() as session:
        await session.execute(update(Upload).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        await commit(session)
    assert (await world.client.head(abandoned, headers=headers | TUS)).status_code == 410
    expired = await world.client.get(abandoned, headers=headers)
    assert expired.status_code == 410 and expired.json()["code"] == "upload_expired"
    await create_upload(world.client, cid, headers, 10, "x.mp4")  # creating an upload purges expired ones
    async with app.state.sessionmaker() as session:
        pieces = (await session.execute(select(func.count()).select_from(Piece))).scalar()
        left = (await session.execute(select(func.count()).select_from(Upload))).scalar()
    assert pieces == 0 and left == 1
