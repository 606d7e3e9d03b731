"""What a file is, from its first bytes: never from its name or the Content-Type it was sent with."""

import re
from dataclasses import dataclass

from consults.attachments.models import Kind

HEAD = 512  # enough for every signature below (DICOM's sits at 128)


@dataclass(frozen=True)
class Sniffed:
    kind: Kind
    media_type: str
    extension: str


_HEIF = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"hevc", b"hevx"}
_MP4 = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash", b"M4V ", b"qt  "}
_M4A = {b"M4A ", b"M4B "}
# What is refused is named, so that a refusal says what was seen; anything unnamed is refused too.
_REFUSED = (
    (re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<svg", re.I | re.S), "svg"),
    (re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<script|<iframe|<!--)", re.I), "html"),
    (re.compile(rb"^#!"), "script"),
    (re.compile(rb"^(MZ|\x7fELF|\xfe\xed\xfa|\xcf\xfa\xed\xfe|\xca\xfe\xba\xbe)"), "executable"),
    (re.compile(rb"^PK\x03\x04"), "archive"),
)


def sniff(head: bytes) -> Sniffed | str:
    """The accepted type of a file that starts with `head`, or the name of what was refused."""
    found = _accepted(head)
    if found is not None:
        return found
    for pattern, name in _REFUSED:
        if pattern.search(head[:HEAD]):
            return name
    return "unknown"


def _accepted(head: bytes) -> Sniffed | None:
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed(Kind.photo, "image/jpeg", "jpg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed(Kind.photo, "image/png", "png")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed(Kind.photo, "image/webp", "webp")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed(Kind.clip, "audio/wav", "wav")
    if head[4:8] == b"ftyp":
        return _ftyp(head[8:12])
    if head.startswith(b"%PDF-"):
        return Sniffed(Kind.document, "application/pdf", "pdf")
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return Sniffed(Kind.clip, "video/webm", "webm")
    if head.startswith(b"OggS"):
        return Sniffed(Kind.clip, "audio/ogg", "ogg")
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] in (0xFB, 0xF3, 0xF2)):
        return Sniffed(Kind.clip, "audio/mpeg", "mp3")
    if head[128:132] == b"DICM":
        return Sniffed(Kind.opaque, "application/dicom", "dcm")
    return None


def _ftyp(brand: bytes) -> Sniffed | None:
    if brand in _HEIF:
        return Sniffed(Kind.photo, "image/heic", "heic")
    if brand in _M4A:
        return Sniffed(Kind.clip, "audio/mp4", "m4a")
    if brand in _MP4:
        return Sniffed(Kind.clip, "video/mp4", "mp4")
    return None


_ALIASES = {
    "jpg": {"jpg", "jpeg", "jpe", "jfif"},
    "heic": {"heic", "heif"},
    "mp4": {"mp4", "m4v", "mov"},
    "m4a": {"m4a", "mp4"},
    "ogg": {"ogg", "oga", "ogv", "opus"},
    "dcm": {"dcm", "dicom"},
}


def names_match(filename: str, found: Sniffed) -> bool:
    """A name without an extension says nothing; one with an extension must name the content's type."""
    stem, dot, ext = filename.rpartition(".")
    if not dot or not stem:
        return True
    return ext.lower() in _ALIASES.get(found.extension, {found.extension})
