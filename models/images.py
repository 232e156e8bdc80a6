"""Read an untrusted picture into a plain array: one decoding path, through Pillow.

This is the bottom layer's decoder (``models`` is where models *and data* come from:
``models.datasets`` reads folders and zips of pictures through it); ``interpret.images``
re-exports it under its public name, ``from interpret.images import read_image``.

Every upload goes through ``read_image``: an allow-list of formats, a pixel cap checked
from the header before any pixel is decoded, a cap on the scans of a JPEG (each scan of a
progressive JPEG is one more pass over the whole picture, so 5,000 of them in a 100 KB file
take seconds to minutes to decode), EXIF orientation applied, the first frame
of an animation, and every mode (palette, CMYK, alpha, 16-bit, 1-bit) turned into plain
uint8 RGB or grayscale. Anything else raises ``ImageError`` with a message a person can act on.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
MAX_PIXELS = int(os.environ.get("CNN_LENS_MAX_PIXELS", 40_000_000))
MAX_BYTES = int(os.environ.get("CNN_LENS_MAX_IMAGE_BYTES", 50_000_000))
MAX_JPEG_SCANS = int(os.environ.get("CNN_LENS_MAX_JPEG_SCANS", 100))  # libjpeg's progressive JPEGs have 10
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
SHRINK_FIRST = ("RGB", "L", "RGBA", "LA", "CMYK", "YCbCr")  # modes Pillow resizes well as they are
# A JPEG marker as libjpeg finds it: 0xFF (fill bytes may repeat it), then a byte that is not 0x00
# (a stuffed 0xFF inside entropy-coded data) and not RST0..RST7 (restart markers inside a scan).
_MARKER = re.compile(rb"\xff+([^\x00\xff\xd0-\xd7])")
_STANDALONE = (0xD8, 0x01)  # SOI, TEM: no length field


class ImageError(ValueError):
    """The data is not a usable picture; the message says why."""


def _open(data: bytes | str | os.PathLike | io.IOBase) -> tuple[bytes, str]:
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise ImageError(f"No such image file: {path}")
        if path.stat().st_size > MAX_BYTES:
            raise ImageError(
                f"{path.name} is {path.stat().st_size / 1e6:.0f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB."
            )
        return path.read_bytes(), path.name
    if hasattr(data, "read"):
        data = data.read(MAX_BYTES + 1)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"Expected image bytes or a file path, got {type(data).__name__}.")
    data = bytes(data)
    if len(data) > MAX_BYTES:
        raise ImageError(f"The file is larger than {MAX_BYTES / 1e6:.0f} MB.")
    return data, "the upload"


def jpeg_scan_count(data: bytes, stop: int | None = None) -> int:
    """The number of scans (SOS markers) libjpeg would decode in the first picture of a JPEG file.

    Walks the markers as libjpeg reads them: segments are skipped by their length, entropy-coded
    data and bytes between segments are skipped up to the next marker, and it ends at EOI.
    Linear in the file's size; stops counting once past ``stop``.
    """
    count, i, n = 0, 2, len(data)
    while True:
        found = _MARKER.search(data, i)
        if found is None:
            return count
        marker, at = found.group(1)[0], found.start(1)
        if marker == 0xD9:  # EOI
            return count
        if marker in _STANDALONE:
            i = at + 1
            continue
        if at + 2 >= n:
            return count
        length = (data[at + 1] << 8) | data[at + 2]
        if marker == 0xDA:  # SOS: its header, then entropy-coded data up to the next marker
            count += 1
            if stop is not None and count > stop:
                return count
        i = at + 1 + max(length, 2)


def _to_plain(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 'RGB' or 'L', alpha composited on white, 16-bit scaled to 8-bit."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode in SIXTEEN_BIT:
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(arr / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if mode == "I":  # 32-bit integer: 16-bit data from some decoders, else scaled by its range
        arr = np.asarray(img, dtype=np.float64)
        top = (
            255.0 if arr.max() <= 255 and arr.min() >= 0 else 65535.0 if arr.max() <= 65535 and arr.min() >= 0 else None
        )
        if top is None:
            lo, hi = arr.min(), arr.max()
            arr, top = arr - lo, (hi - lo) or 1.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        lo, hi = arr.min(), arr.max()
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), "L")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("LA", "La"):  # grayscale with alpha stays grayscale, composited on white
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img.convert("RGBA")).convert("L")
    if mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


def shrunk_size(width: int, height: int, needed: tuple[int, int]) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, to the smallest size that still covers ``needed`` (h, w).

    Never scales up: a picture smaller than ``needed`` keeps its size.
    """
    need_h, need_w = (max(1, int(v)) for v in needed)
    scale = max(need_h / height, need_w / width)
    if scale >= 1.0:
        return width, height
    return min(width, max(need_w, math.ceil(width * scale))), min(height, max(need_h, math.ceil(height * scale)))


def _shrink(img: Image.Image, needed: tuple[int, int]) -> Image.Image:
    size = shrunk_size(*img.size, needed)
    if size == img.size:
        return img
    return img.resize(size, Image.Resampling.BOX)  # area averaging, like the model's own resize down


def read_image(
    data: bytes | str | os.PathLike,
    max_pixels: int | None = None,
    max_scans: int | None = None,
    needed: tuple[int, int] | None = None,
    label: str | None = None,
) -> np.ndarray:
    """Bytes, a file object or a path -> uint8 (H, W, 3) RGB or (H, W) grayscale.

    ``needed=(height, width)``: only that much resolution is wanted (a model's input size, a
    thumbnail). The picture is scaled down as it is read, keeping its aspect ratio, to the
    smallest size that still covers ``needed``: a JPEG is decoded at 1/2, 1/4 or 1/8 scale
    where that suffices (libjpeg's own scaling, far less memory and time), and no full-size
    copy outlives the call. A 40 MP picture then costs one decoded frame at most, not the
    several full-size copies that colour conversion would make.

    ``label``: how messages name the picture (default: the file's name, or "the upload").
    """
    max_pixels = int(os.environ.get("CNN_LENS_MAX_PIXELS", MAX_PIXELS)) if max_pixels is None else max_pixels
    max_scans = int(os.environ.get("CNN_LENS_MAX_JPEG_SCANS", MAX_JPEG_SCANS)) if max_scans is None else max_scans
    raw, own_label = _open(data)
    label = label or own_label
    if not raw:
        raise ImageError(f"{label} is empty.")
    try:
        img = Image.open(io.BytesIO(raw), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"{label} is not an image CNN Lens can read. Use one of: {', '.join(ALLOWED_FORMATS)}."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{label} declares too many pixels to decode safely; the limit is {max_pixels / 1e6:.0f} MP."
        ) from exc
    except Exception as exc:  # Pillow raises many types on hostile headers
        raise ImageError(f"{label} could not be read as an image ({type(exc).__name__}: {exc}).") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{label} has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageError(
            f"{label} is {width}x{height} = {width * height / 1e6:.0f} megapixels; the limit is "
            f"{max_pixels / 1e6:.0f} MP (CNN_LENS_MAX_PIXELS). Downscale it first."
        )
    if raw[:2] == b"\xff\xd8":  # JPEG (and MPO): count the scans before libjpeg decodes any of them
        scans = jpeg_scan_count(raw, stop=max_scans)
        if scans > max_scans:
            raise ImageError(
                f"{label} is a JPEG with more than {max_scans} scans (an ordinary progressive JPEG has about 10); "
                "decoding it would take too long (CNN_LENS_MAX_JPEG_SCANS). Save it again as a plain JPEG or PNG."
            )
    # Strict decoding: a truncated file is an error (this is Pillow's default; never relaxed here).
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img.seek(0)  # the first frame of an animation
        if needed is not None and img.format == "JPEG":
            # Decode at the smallest 1/2^k scale that still covers ``needed`` either way round
            # (EXIF may turn the picture by 90 degrees).
            side = max(needed)
            img.draft(None, shrunk_size(width, height, (side, side)))
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # in place: without it Pillow returns a full-size copy
        if needed is not None and img.mode in SHRINK_FIRST:
            img = _shrink(img, needed)  # before the colour conversion: it copies the whole frame
        img = _to_plain(img)
        if needed is not None:
            img = _shrink(img, needed)
        arr = np.array(img)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageError(f"{label} is damaged or truncated and could not be decoded ({exc}).") from exc
    except (Image.DecompressionBombError, MemoryError) as exc:
        raise ImageError(f"{label} is too large to decode.") from exc
    if arr.dtype != np.uint8:
        arr = arr.astype(np.uint8)
    return arr


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (H, W[, 3]) -> PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
