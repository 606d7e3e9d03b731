"""The tus request headers, read once the caller is known to see the consult (404 comes first)."""

import base64
import binascii

from api.schemas import UNSTORABLE
from consults.attachments.exceptions import BadUploadHeader, UnsupportedOffsetType

OFFSET_STREAM = "application/offset+octet-stream"


def length(value: str | None) -> int:
    if value is None or not value.isdigit() or len(value) > 15:
        raise BadUploadHeader("Upload-Length must be a non-negative integer")
    return int(value)


def offset(value: str | None) -> int:
    if value is None or not value.isdigit() or len(value) > 15:
        raise BadUploadHeader("Upload-Offset must be a non-negative integer")
    return int(value)


def metadata(value: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs; values must be UTF-8 text."""
    found: dict[str, str] = {}
    if not value:
        return found
    if len(value) > 4096:
        raise BadUploadHeader("Upload-Metadata is limited to 4096 characters")
    for pair in value.split(","):
        key, _, encoded = pair.strip().partition(" ")
        try:
            text = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadUploadHeader(f"Upload-Metadata {key!r} is not base64 of UTF-8 text") from None
        if not key or UNSTORABLE.search(text) or len(text) > 255:
            raise BadUploadHeader(f"Upload-Metadata {key!r} is not a storable short text")
        found[key] = text
    return found


def offset_stream(content_type: str | None) -> None:
    """A PATCH body is the upload's bytes, and says so."""
    if (content_type or "").split(";")[0].strip().lower() != OFFSET_STREAM:
        raise UnsupportedOffsetType()
