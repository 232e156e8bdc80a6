"""Pictures in and out: the public home of the strict decoder (``read_image``, ``ImageError``).

The decoder itself lives in :mod:`models.images`, one layer down, because
``models.datasets`` (folders and zips of pictures) reads through it and ``models`` may not
import ``interpret``. This module re-exports it unchanged, so ``from interpret.images import
read_image`` keeps working and ``ImageError`` is the same class everywhere.
"""

from __future__ import annotations

from models.images import (
    ALLOWED_FORMATS,
    MAX_BYTES,
    MAX_JPEG_SCANS,
    MAX_PIXELS,
    ImageError,
    encode_png,
    jpeg_scan_count,
    read_image,
)

__all__ = [
    "ALLOWED_FORMATS",
    "MAX_BYTES",
    "MAX_JPEG_SCANS",
    "MAX_PIXELS",
    "ImageError",
    "encode_png",
    "jpeg_scan_count",
    "read_image",
]
