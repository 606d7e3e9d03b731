"""Attachment tests: files to send (a GPS-tagged photo, a clip, hostile ones) and a tus client."""

import base64
import io
import os
import struct
import zlib

import pytest
from PIL import Image

from tests.consults.conftest import CONSULT

TUS = {"Tus-Resumable": "1.0.0"}
MAKE, MODEL = "LiaisonCam", "FieldPhone 9"


@pytest.fixture
def settings_overrides(tmp_path) -> dict:
    return {"escalation_poll_seconds": 0.05, "attachments_path": str(tmp_path / "attachments")}


def gps_jpeg() -> bytes:
    """64×32 pixels, left half red, tagged with GPS, camera make and model, and Orientation 6 (turn 90°)."""
    image = Image.new("RGB", (64, 32), "blue")
    image.paste((255, 0, 0), (0, 0, 32, 32))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = MAKE, MODEL, 6
    exif[0x0131] = "FieldOS 1.2"  # Software
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (59.0, 19.0, 12.5), 3: "E", 4: (18.0, 4.0, 7.25)})
    out = io.BytesIO()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><exif:GPSLatitude>59,19N</exif:GPSLatitude></rdf:RDF></x:xmpmeta>'
    image.save(out, "JPEG", exif=exif, xmp=xmp, comment=b"shot at FOB Liaison")
    return out.getvalue()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), "green").save(out, "PNG")
    return out.getvalue()


def clip(size: int) -> bytes:
    """An MP4's signature followed by random bytes: a clip as the sniffer sees it, stored as sent."""
    return b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(size - 24)


def png_bomb(side: int = 100_000) -> bytes:
    """A few hundred bytes whose header promises side × side pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def metadata(filename: str) -> str:
    return "filename " + base64.b64encode(filename.encode()).decode()


async def create_upload(client, cid: str, headers: dict, length: int, filename: str):
    return await client.post(
        f"/api/v1/consults/{cid}/uploads",
        headers=headers | TUS | {"Upload-Length": str(length), "Upload-Metadata": metadata(filename)},
    )


async def patch(client, location: str, headers: dict, offset: int, data: bytes):
    return await client.patch(
        location,
        content=data,
        headers=headers
        | TUS
        | {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
    )


async def upload(client, cid: str, headers: dict, data: bytes, filename: str):
    """Create and send a whole upload in one PATCH; the final PATCH's response."""
    created = await create_upload(client, cid, headers, len(data), filename)
    assert created.status_code == 201, created.text
    return await patch(client, created.headers["Location"], headers, 0, data)


async def attach(
    client, cid: str, headers: dict, data: bytes, filename: str, body: str = "see attached"
) -> dict:
    """Upload a file and post it in a message; the message."""
    done = await upload(client, cid, headers, data, filename)
    assert done.status_code == 204, done.text
    posted = await client.post(
        f"/api/v1/consults/{cid}/messages",
        json={"body": body, "attachment_ids": [done.headers["Attachment-Id"]]},
        headers=headers,
    )
    assert posted.status_code == 201, posted.text
    return posted.json()


__all__ = ["CONSULT"]
