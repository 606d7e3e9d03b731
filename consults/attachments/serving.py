"""How stored bytes go out: never sniffable, never scriptable, ranges for clips."""

import re
from urllib.parse import quote

from starlette.responses import StreamingResponse

from consults.attachments.exceptions import RangeNotSatisfiable
from consults.attachments.models import Attachment, Kind
from consults.attachments.storage import Store, verify

# Nothing served here may run or load anything, even if a browser were made to render it.
CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def safety_headers(attachment: Attachment, filename: str, *, inline: bool) -> dict[str, str]:
    # Inline only what we re-encoded ourselves (photos); every other type is a download.
    disposition = "inline" if inline and attachment.kind is Kind.photo else "attachment"
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return {
        "Content-Disposition": f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CSP,
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "private, no-store",
        "Referrer-Policy": "no-referrer",
    }


async def respond(
    store: Store,
    attachment: Attachment,
    *,
    sha256: str,
    size: int,
    media_type: str,
    filename: str,
    range_header: str | None,
) -> StreamingResponse:
    """The blob, whole or the one range asked for, once its digest has been checked."""
    await verify(store, sha256, size)
    start, end = _range(range_header, size)
    headers = safety_headers(attachment, filename, inline=media_type.startswith("image/"))
    headers |= {"Accept-Ranges": "bytes", "Content-Length": str(end - start), "ETag": f'"{sha256}"'}
    status = 200
    if (start, end) != (0, size):
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(
        store.read(sha256, start, end), status_code=status, media_type=media_type, headers=headers
    )


def _range(header: str | None, size: int) -> tuple[int, int]:
    """[start, end) of a single `bytes=` range; anything else (several ranges, other units) is all of it."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return 0, size
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size  # the last N bytes
    else:
        start, end = int(first), min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise RangeNotSatisfiable(size)
    return start, end
