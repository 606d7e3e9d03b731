"""Attachments: tus upload throughput of a 20 MB photo and a 100 MB clip, and the node's memory.

Each upload goes to a real node (`liaison serve`, one worker) as a tus client sends it: POST, then
PATCHes of PIECE bytes. Stores: the embedded default (SQLite, blobs on the local disk), and
PostgreSQL with blobs on the disk or in PostgreSQL's chunk rows: the measure behind
LIAISON_ATTACHMENTS_STORE=auto. Baselines in the same run: `shutil.copyfile` of the same bytes, and
a bare HTTP upload of them to a server that only writes the body to a file (bench.bare_upload).
The node's peak RSS (sampled every 20 ms, all its processes) during the 100 MB upload, against its
RSS before: streaming means the peak stays far below the body's size.

The photo is a 20 MP JPEG of noise (the hardest case for re-encoding); the clip an MP4 signature
followed by random bytes (stored as sent, hashed twice: its digest, then the copy to the store).
"""

import asyncio
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from api.migrate import upgrade
from bench.common import PASSWORD, node_settings, scratch_database, seed
from bench.nodes import Node

PIECE = 8 * 1024 * 1024
MB = 1024 * 1024
Row = tuple[str, str, str, str]
TUS = {"Tus-Resumable": "1.0.0"}


def photo() -> bytes:
    """A JPEG of noise just under 20 MB (the photo limit)."""
    pixels = Image.frombytes("RGB", (5000, 4000), os.urandom(5000 * 4000 * 3))
    for quality in (92, 88, 84, 80, 75):
        out = io.BytesIO()
        pixels.save(out, "JPEG", quality=quality)
        if out.tell() <= 20 * MB:
            return out.getvalue()
    raise RuntimeError("no quality made the photo fit 20 MB")


def clip() -> bytes:
    return b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(100 * MB - 24)


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


async def _peak_rss(node: Node, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, rss_kib(node.pids()))
        await asyncio.sleep(0.02)
    return peak


async def _tus_upload(client: httpx.AsyncClient, cid: str, token: str, data: bytes, name: str) -> float:
    """Seconds for the whole upload, from POST to the last PATCH's answer (the attachment made)."""
    auth = {"Authorization": f"Bearer {token}"} | TUS
    start = time.perf_counter()
    created = await client.post(
        f"/api/v1/consults/{cid}/uploads", headers=auth | {"Upload-Length": str(len(data))}
    )
    assert created.status_code == 201, created.text
    location, offset = created.headers["location"], 0
    while offset < len(data):
        piece = data[offset : offset + PIECE]
        resp = await client.patch(
            location,
            content=piece,
            headers=auth | {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
        )
        assert resp.status_code == 204, resp.text
        offset += len(piece)
    assert "attachment-id" in resp.headers, name
    return time.perf_counter() - start


async def _node_rows(label: str, url: str, store: str, files: dict[str, bytes], tmp: Path) -> list[Row]:
    users = await seed(url, specialists=0)
    settings = node_settings(
        url
    ).model_copy(
        update={
            "redis_url": None,  # one node: the upload path touches no Redis
            "attachments_store": store,
            "attachments_path": str(tmp / f"att-{store}-{label[:3]}"),
        }
    )
    node = Node(settings)
    await node.start()
    rows = []
    try:
        async with httpx.AsyncClient(base_url=f"http://{node.host}", timeout=300) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": users["clinician"], "password": PASSWORD}
            )
            token = login.json()["access_token"]
            consult = await client.post(
                "/api/v1/consults",
                json={"specialty": "burns", "urgency": "routine", "question": "b", "patient_ref": "B-1"},
                headers={"Authorization": f"Bearer {token}"},
            )
            cid = consult.json()["id"]
            for name, data in files.items():
                before = rss_kib(node.pids())
                stop = asyncio.Event()
                watcher = asyncio.create_task(_peak_rss(node, stop))
                seconds = await _tus_upload(client, cid, token, data, name)
                stop.set()
                peak = await watcher
                mbps = len(data) / MB / seconds
                rows.append((f"upload {name}, {label}", f"{mbps:.1f} MB/s", "", ""))
                if name.startswith("100 MB"):
                    rows.append(
                        (
                            f"node RSS during the {name} upload, {label}",
                            f"peak {peak / 1024:.0f} MB",
                            f"before {before / 1024:.0f} MB",
                            f"+{(peak - before) / 1024:.0f} MB for a {len(data) // MB} MB body",
                        )
                    )
    finally:
        node.stop()
    return rows


def _copy(data: bytes, tmp: Path) -> float:
    """MB/s of shutil.copyfile of the bytes (from a file just written, so from the page cache), synced."""
    source = tmp / "source"
    source.write_bytes(data)
    start = time.perf_counter()
    shutil.copyfile(source, tmp / "copy")
    with open(tmp / "copy", "rb+") as f:
        os.fsync(f.fileno())
    return len(data) / MB / (time.perf_counter() - start)


async def _baselines(files: dict[str, bytes], tmp: Path) -> dict[str, tuple[float, float]]:
    """(shutil copy MB/s, bare HTTP upload MB/s) of each file."""
    bare = Node(node_settings("sqlite://"), command=[sys.executable, "-m", "bench.bare_upload"])
    await bare.start()
    found = {}
    try:
        async with httpx.AsyncClient(base_url=f"http://{bare.host}", timeout=300) as client:
            for name, data in files.items():
                copied = _copy(data, tmp)
                start = time.perf_counter()
                for offset in range(0, len(data), PIECE):
                    await client.patch("/upload", content=data[offset : offset + PIECE])
                found[name] = (copied, len(data) / MB / (time.perf_counter() - start))
    finally:
        bare.stop()
    return found


async def run() -> list[Row]:
    files = {"20 MB photo": photo(), "100 MB clip": clip()}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        base = await _baselines(files, tmp)
        sqlite = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        await upgrade(sqlite)
        rows += await _node_rows("SQLite + disk", sqlite, "disk", files, tmp)
        for store in ("disk", "database"):
            async with scratch_database() as url:
                rows += await _node_rows(f"PostgreSQL + {store}", url, store, files, tmp)
    out = []
    for row in rows:
        named = next((n for n in files if n in row[0]), None)
        if named and row[0].startswith("upload"):
            copied, bare = base[named]
            out.append(
                (
                    row[0],
                    row[1],
                    f"bare HTTP {bare:.1f} MB/s, copy {copied:.0f} MB/s",
                    f"{float(row[1].split()[0]) / bare:.2f}× bare HTTP",
                )
            )
        else:
            out.append(row)
    return out
