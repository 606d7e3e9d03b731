"""Photos lose their location and device, keep their orientation; hostile files are refused."""

import io

import pytest
from PIL import Image

from tests.consults.attachments.conftest import (
    CONSULT,
    MAKE,
    MODEL,
    attach,
    clip,
    create_upload,
    gps_jpeg,
    png,
    png_bomb,
    upload,
)
from tests.live import accepted_consult

GPS_IFD, MAKE_TAG, MODEL_TAG, ORIENTATION, SOFTWARE = 0x8825, 0x010F, 0x0110, 0x0112, 0x0131


async def test_a_gps_tagged_jpeg_comes_back_upright_without_location_or_device(app, world):
    original = gps_jpeg()
    sent = Image.open(io.BytesIO(original))
    assert sent.getexif().get_ifd(GPS_IFD) and sent.getexif()[MAKE_TAG] == MAKE  # the test's own premise
    consult = await accepted_consult(app, world, CONSULT)
    cid = consult["id"]
    message = await attach(world.client, cid, await world.headers("a-clinician"), original, "wound.jpg")
    (meta,) = message["attachments"]
    assert (meta["kind"], meta["media_type"], meta["width"], meta["height"]) == (
        "photo",
        "image/jpeg",
        32,
        64,
    )
    got = await world.client.get(
        f"/api/v1/consults/{cid}/attachments/{meta['id']}/content",
        headers=await world.headers("b-specialist"),
    )
    assert got.status_code == 200, got.text
    image = Image.open(io.BytesIO(got.content))
    exif = image.getexif()
    assert not exif.get_ifd(GPS_IFD) and GPS_IFD not in exif
    assert {MAKE_TAG, MODEL_TAG, SOFTWARE, ORIENTATION}.isdisjoint(exif)
    assert "xmp" not in image.info and "comment" not in image.info and "exif" not in image.info
    for trace in (MAKE.encode(), MODEL.encode(), b"GPS", b"FOB Liaison", b"FieldOS"):
        assert trace not in got.content
    # Orientation 6 turned the 64×32 picture upright: now 32 wide, 64 high, its red half on top.
    assert image.size == (32, 64)
    red, blue = image.convert("RGB").getpixel((16, 8)), image.convert("RGB").getpixel((16, 56))
    assert red[0] > 200 and red[2] < 60 and blue[2] > 200 and blue[0] < 60
    assert got.headers["content-disposition"].startswith("inline")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in got.headers["content-security-policy"]
    thumb = await world.client.get(
        f"/api/v1/consults/{cid}/attachments/{meta['id']}/thumbnail",
        headers=await world.headers("a-clinician"),
    )
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    small = Image.open(io.BytesIO(thumb.content))
    assert small.format == "JPEG" and max(small.size) <= 320 and not small.getexif().get_ifd(GPS_IFD)


HOSTILE = [
    ("a PNG renamed .pdf", png(), "scan.pdf", 415, "attachment_type_mismatch"),
    (
        "HTML renamed .jpg",
        b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        "photo.jpg",
        415,
        "attachment_type_refused",
    ),
    (
        "an SVG with a script",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "chart.svg",
        415,
        "attachment_type_refused",
    ),
    ("a shell script", b"#!/bin/sh\nrm -rf /\n", "run.sh", 415, "attachment_type_refused"),
    ("a Windows executable", b"MZ\x90\x00" + b"\x00" * 600, "setup.exe", 415, "attachment_type_refused"),
    ("a zip", b"PK\x03\x04" + b"\x00" * 600, "photos.zip", 415, "attachment_type_refused"),
    ("a PNG bomb (10^10 pixels)", png_bomb(100_000), "bomb.png", 413, "image_too_many_pixels"),
    ("a PNG past the pixel limit", png_bomb(7_000), "big.png", 413, "image_too_many_pixels"),
    ("a truncated JPEG", gps_jpeg()[:300], "cut.jpg", 422, "image_unreadable"),
]


@pytest.mark.parametrize(("what", "data", "name", "status", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_hostile_files_are_refused_with_problem_json(app, world, what, data, name, status, code):
    consult = await accepted_consult(app, world, CONSULT)
    resp = await upload(world.client, consult["id"], await world.headers("a-clinician"), data, name)
    assert resp.status_code == status, (what, resp.text)
    assert resp.headers["content-type"] == "application/problem+json" and resp.json()["code"] == code
    listed = await world.client.get(
        f"/api/v1/consults/{consult['id']}/attachments", headers=await world.headers("a-clinician")
    )
    assert listed.json()["count"] == 0  # nothing of it was kept


async def test_each_kind_has_its_size_limit(app, world):
    consult = await accepted_consult(app, world, CONSULT)
    headers = await world.headers("a-clinician")
    too_big = await create_upload(world.client, consult["id"], headers, 100 * 1024 * 1024 + 1, "clip.mp4")
    assert too_big.status_code == 413 and too_big.json()["code"] == "attachment_too_large"
    # 21 MB fits a clip but not a photo: refused once the first bytes show it is a photo.
    created = await create_upload(world.client, consult["id"], headers, 21 * 1024 * 1024, "big.jpg")
    assert created.status_code == 201
    from tests.consults.attachments.conftest import patch

    first = await patch(world.client, created.headers["Location"], headers, 0, gps_jpeg())
    assert first.status_code == 413 and first.json()["kind"] == "photo"
    ok = await upload(world.client, consult["id"], headers, clip(2048), "gait.mp4")
    assert ok.status_code == 204


async def test_a_heic_photo_is_stored_as_a_jpeg_without_its_metadata(app, world):
    import pillow_heif

    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[MAKE_TAG], exif[MODEL_TAG] = MAKE, MODEL
    out = io.BytesIO()
    Image.new("RGB", (48, 24), "red").save(out, "HEIF", exif=exif)
    consult = await accepted_consult(app, world, CONSULT)
    message = await attach(
        world.client, consult["id"], await world.headers("a-clinician"), out.getvalue(), "IMG_0001.HEIC"
    )
    (meta,) = message["attachments"]
    assert (meta["media_type"], meta["filename"]) == ("image/jpeg", "IMG_0001.jpg")
    got = await world.client.get(
        f"{API_CONTENT.format(cid=consult['id'], aid=meta['id'])}", headers=await world.headers("a-clinician")
    )
    image = Image.open(io.BytesIO(got.content))
    assert image.format == "JPEG" and {MAKE_TAG, MODEL_TAG}.isdisjoint(image.getexif())
    assert MAKE.encode() not in got.content


API_CONTENT = "/api/v1/consults/{cid}/attachments/{aid}/content"
