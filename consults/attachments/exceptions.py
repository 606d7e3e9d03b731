"""Errors of attachments and their uploads, each with a stable code."""

from api.errors import Conflict, DomainError, InvalidInput


class TypeRefused(DomainError):
    status, code, title = 415, "attachment_type_refused", "This kind of file is not accepted"


class TypeMismatch(DomainError):
    status, code, title = (
        415,
        "attachment_type_mismatch",
        "The file's name says another type than its content",
    )


class TooLarge(DomainError):
    status, code, title = 413, "attachment_too_large", "The file is larger than its kind allows"


class ImageRefused(InvalidInput):
    code, title = "image_unreadable", "The image could not be read as the type its content claims"


class ImageTooLarge(DomainError):
    # A decompression bomb looks like this: a small file that would decode to far too many pixels.
    status, code, title = 413, "image_too_many_pixels", "The image decodes to more pixels than allowed"


class OffsetMismatch(Conflict):
    code, title = "upload_offset_mismatch", "Upload-Offset is not the offset the server holds"


class UploadGone(DomainError):
    status, code, title = 410, "upload_expired", "The upload expired or was terminated"


class BadUploadHeader(InvalidInput):
    code, title = "invalid_upload_header", "A tus header is missing or malformed"


class BadAttachment(InvalidInput):
    code, title = "invalid_attachment", "That attachment cannot go with this message"


class Corrupt(DomainError):
    # The stored bytes no longer match their digest: never served, and worth an operator's look.
    status, code, title = 500, "attachment_corrupt", "The stored attachment failed its integrity check"


class RangeNotSatisfiable(DomainError):
    status, code, title = 416, "range_not_satisfiable", "The requested range is outside the attachment"

    def __init__(self, size: int) -> None:
        super().__init__(f"The attachment has {size} bytes", size=size)
        self.headers = {"Content-Range": f"bytes */{size}"}


class TusVersion(DomainError):
    status, code, title = 412, "tus_version_unsupported", "Only tus 1.0.0 is spoken here"

    def __init__(self) -> None:
        super().__init__()
        self.headers = {"Tus-Version": "1.0.0"}


class UnsupportedOffsetType(DomainError):
    status, code, title = 415, "unsupported_media_type", "PATCH bodies are application/offset+octet-stream"
