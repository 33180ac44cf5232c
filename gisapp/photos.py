"""Inspection photos: checked, resized on the server and re-encoded, keeping only the time and position of EXIF.

One photo at a time, from the upload's (spooled) file: Pillow reads the
header first, refuses what is not a JPEG, PNG or WebP image or would
decompress to more than :data:`MAX_PIXELS`, decodes a JPEG at a reduced
scale (``draft``: a 12 MP phone photo is decoded at 2000 × 1500, a quarter
of its pixels) and writes a JPEG whose long side is at most
:data:`MAX_SIDE` pixels.  The EXIF written back holds the time taken
(``DateTime``, ``DateTimeOriginal``, ``OffsetTimeOriginal``) and the GPS
block; nothing else (camera, owner, serial numbers, thumbnails) survives.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

#: Largest photo accepted, in bytes (20 MB).
MAX_BYTES = 20 * 1024 * 1024
#: Most photos one inspection holds.
MAX_PHOTOS = 5
#: Long side of a stored photo, in pixels.
MAX_SIDE = 1600
#: Most pixels a photo may decode to: Pillow's own bomb threshold (``Image.MAX_IMAGE_PIXELS``, ~89 MP; phones
#: write 12-50 MP), checked from the header before anything is decoded.
MAX_PIXELS = 89_478_485
#: Formats accepted from phones and cameras.
FORMATS = ("JPEG", "PNG", "WEBP")  # (a JPEG with several pictures opens as MPO)
_JPEG_QUALITY = 85
#: EXIF tags kept: IFD0 DateTime; Exif IFD DateTimeOriginal, OffsetTimeOriginal; the whole GPS IFD.
_DATETIME, _EXIF_IFD, _GPS_IFD = 0x0132, 0x8769, 0x8825
_EXIF_KEPT = (0x9003, 0x9011)


class PhotoError(ValueError):
    """A photo that cannot be accepted; the message (Vietnamese / English) says why."""


@dataclass(frozen=True)
class Photo:
    """A stored photo: its unguessable token (its URL), the JPEG bytes and their size in pixels."""

    token: str
    data: bytes
    width: int
    height: int


def new_token() -> str:
    """An unguessable photo token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def process(stream: IO[bytes], name: str = "photo") -> Photo:
    """The stored form of the uploaded photo in ``stream`` (read from its start), or :class:`PhotoError`."""
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    if size == 0:
        raise PhotoError(f"{name}: tệp rỗng / the file is empty")
    if size > MAX_BYTES:
        raise PhotoError(f"{name}: ảnh lớn hơn {MAX_BYTES // (1024 * 1024)} MB / "
                         f"the image is larger than {MAX_BYTES // (1024 * 1024)} MB ({size / 1048576:.1f} MB)")
    # (no warnings filter: it is process-wide, and requests run in threads; _convert checks the size itself)
    try:
        with Image.open(stream, formats=FORMATS) as img:
            return _convert(img, name)
    except Image.DecompressionBombError:
        raise PhotoError(f"{name}: ảnh giải nén quá lớn / the image decompresses to too many pixels "
                         "(a decompression bomb)") from None
    except UnidentifiedImageError:
        raise PhotoError(f"{name}: không phải ảnh JPEG, PNG hoặc WebP / "
                         "not an image (JPEG, PNG or WebP)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise PhotoError(f"{name}: ảnh hỏng / the image is damaged ({err})") from None


def _convert(img: Image.Image, name: str) -> Photo:
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise PhotoError(f"{name}: ảnh giải nén quá lớn / the image decompresses to too many pixels "
                         f"({width} × {height}, more than {MAX_PIXELS:,}: a decompression bomb?)")
    exif = img.getexif()
    scale = min(1.0, MAX_SIDE / max(width, height))
    if img.format in ("JPEG", "MPO"):
        img.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
    img = ImageOps.exif_transpose(img)  # the pixels upright: the orientation tag is not kept
    if img.mode != "RGB":
        img = img.convert("RGB")
    img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=_JPEG_QUALITY, exif=kept_exif(exif).tobytes())
    return Photo(new_token(), out.getvalue(), img.width, img.height)


def kept_exif(exif: Image.Exif) -> Image.Exif:
    """A new EXIF block with only the time the photo was taken and its GPS position from ``exif``."""
    kept = Image.Exif()
    if _DATETIME in exif:
        kept[_DATETIME] = exif[_DATETIME]
    sub = exif.get_ifd(_EXIF_IFD)
    times = {tag: sub[tag] for tag in _EXIF_KEPT if tag in sub}
    if times:
        kept_sub = kept.get_ifd(_EXIF_IFD)
        kept_sub.update(times)
    gps = exif.get_ifd(_GPS_IFD)
    if gps:
        kept.get_ifd(_GPS_IFD).update(gps)
    return kept
