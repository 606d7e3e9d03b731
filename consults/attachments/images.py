"""Images are decoded and encoded anew: what is stored is pixels, never the file that was sent.

The new file carries no EXIF (so no GPS, no camera make, model, serial number, lens, software,
capture times, maker notes or embedded thumbnail), no XMP, no IPTC, no comments and no text chunks;
the orientation is applied to the pixels and its tag dropped. Only the ICC colour profile is kept,
since colour matters in a wound or a rash. Of an animation, the first frame.
"""

import io
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, ImageOps

from consults.attachments.exceptions import ImageRefused, ImageTooLarge

pillow_heif.register_heif_opener()
THUMBNAIL = (320, 320)
_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/heic": "HEIF"}


@dataclass(frozen=True)
class Clean:
    data: bytes
    media_type: str
    width: int
    height: int
    thumbnail: bytes


def clean(data: bytes, media_type: str, *, max_pixels: int) -> Clean:
    """The image re-encoded without its metadata, upright, and its thumbnail (a small JPEG)."""
    image = _open(data, media_type, max_pixels)
    icc = image.info.get("icc_profile")
    upright = ImageOps.exif_transpose(image)
    pixels = Image.new(upright.mode, upright.size)  # a fresh image: nothing of the old one's info
    pixels.paste(upright)
    out_type = "image/jpeg" if media_type == "image/heic" else media_type  # browsers show no HEIC
    encoded = _encode(pixels, out_type, icc)
    return Clean(encoded, out_type, pixels.width, pixels.height, _thumbnail(pixels))


def _open(data: bytes, media_type: str, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=[_FORMATS[media_type]])
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except Exception as exc:
        raise ImageRefused() from exc
    if image.width * image.height > max_pixels:  # checked from the header, before any decoding
        raise ImageTooLarge(f"{image.width}x{image.height} is more than {max_pixels} pixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(str(exc)) from exc
    except Exception as exc:
        raise ImageRefused() from exc
    return image


def _encode(image: Image.Image, media_type: str, icc: bytes | None) -> bytes:
    out = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if media_type == "image/jpeg":
        rgb = image if image.mode in ("RGB", "L", "CMYK") else image.convert("RGB")
        rgb.save(out, "JPEG", quality=90, exif=b"", **extra)
    elif media_type == "image/png":
        image.save(out, "PNG", exif=b"", **extra)
    else:
        image.save(out, "WEBP", quality=90, exif=b"", xmp=b"", **extra)
    return out.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    small = image.convert("RGB")
    small.thumbnail(THUMBNAIL)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80)
    return out.getvalue()
