"""Generate the image corpus: awkward but valid pictures with known pixels, and broken or hostile files.

Each ``good`` case returns ``(file bytes, expected uint8 array, tolerance)``; each ``bad`` case
returns ``(file bytes, phrase the error message must contain)``.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def quadrants(w: int = 8, h: int = 4) -> np.ndarray:
    """An RGB picture whose four corners differ, so any rotation or flip shows."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = RED
    a[: h // 2, w // 2 :] = GREEN
    a[h // 2 :, : w // 2] = BLUE
    a[h // 2 :, w // 2 :] = WHITE
    return a


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


# What a viewer shows for each EXIF orientation of the stored array.
ORIENTED = {
    3: lambda a: np.rot90(a, 2),
    6: lambda a: np.rot90(a, -1),  # stored rotated: display turned 90 degrees clockwise
    8: lambda a: np.rot90(a, 1),
    2: lambda a: a[:, ::-1],
}

Good = Callable[[], tuple[bytes, np.ndarray, int]]


def exif_png(orientation: int) -> Good:
    def make() -> tuple[bytes, np.ndarray, int]:
        a = quadrants()
        return save(Image.fromarray(a), "PNG", exif=_exif(orientation)), ORIENTED[orientation](a), 0

    return make


def exif_jpeg() -> tuple[bytes, np.ndarray, int]:
    a = np.repeat(np.repeat(quadrants(), 8, axis=0), 8, axis=1)  # 8x8 blocks keep JPEG colours clean
    data = save(Image.fromarray(a), "JPEG", quality=100, subsampling=0, exif=_exif(6))
    return data, ORIENTED[6](a), 8


def palette() -> tuple[bytes, np.ndarray, int]:
    a = quadrants()
    img = Image.fromarray(a).quantize(colors=4)
    return save(img, "PNG"), a, 0


def palette_transparent() -> tuple[bytes, np.ndarray, int]:
    a = quadrants()
    img = Image.fromarray(a).quantize(colors=4)
    index_of_blue = int(np.asarray(img)[-1, 0])
    data = save(img, "PNG", transparency=index_of_blue)
    expected = a.copy()
    expected[a.shape[0] // 2 :, : a.shape[1] // 2] = WHITE  # transparent blue shows the white page
    return data, expected, 0


def cmyk_tiff() -> tuple[bytes, np.ndarray, int]:
    cmyk = np.zeros((2, 3, 4), np.uint8)
    cmyk[:, 0] = (0, 255, 255, 0)  # red
    cmyk[:, 1] = (255, 0, 255, 0)  # green
    cmyk[:, 2] = (0, 0, 0, 255)  # black
    expected = np.zeros((2, 3, 3), np.uint8)
    expected[:, 0] = RED
    expected[:, 1] = GREEN
    return save(Image.fromarray(cmyk, "CMYK"), "TIFF"), expected, 0


def cmyk_jpeg() -> tuple[bytes, np.ndarray, int]:
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[..., 1:3] = 255  # red everywhere
    expected = np.zeros((16, 16, 3), np.uint8)
    expected[:] = RED
    return save(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=95), expected, 12


def rgba() -> tuple[bytes, np.ndarray, int]:
    a = np.zeros((2, 2, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 255)  # opaque red
    a[0, 1] = (255, 0, 0, 0)  # invisible red -> white page
    a[1, 0] = (0, 0, 255, 128)  # half blue on white
    a[1, 1] = (0, 0, 0, 255)
    expected = np.array([[RED, WHITE], [(127, 127, 255), (0, 0, 0)]], np.uint8)
    return save(Image.fromarray(a, "RGBA"), "PNG"), expected, 1


def gray_alpha() -> tuple[bytes, np.ndarray, int]:
    a = np.array([[[0, 255], [0, 0]], [[100, 255], [200, 128]]], np.uint8)  # (L, A) pairs
    expected = np.array([[0, 255], [100, 227]], np.uint8)
    return save(Image.fromarray(a, "LA"), "PNG"), expected, 1


def gray16() -> tuple[bytes, np.ndarray, int]:
    a = np.array([[0, 257, 32768, 65535]], np.uint16)
    return save(Image.fromarray(a), "PNG"), np.array([[0, 1, 128, 255]], np.uint8), 0


def gray16_tiff() -> tuple[bytes, np.ndarray, int]:
    a = np.array([[65535, 0], [1000, 64000]], np.uint16)
    return save(Image.fromarray(a), "TIFF"), np.array([[255, 0], [4, 249]], np.uint8), 0


def one_bit() -> tuple[bytes, np.ndarray, int]:
    a = np.array([[1, 0, 1], [0, 0, 1]], bool)
    return save(Image.fromarray(a), "PNG"), (a * 255).astype(np.uint8), 0


def grayscale() -> tuple[bytes, np.ndarray, int]:
    a = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    return save(Image.fromarray(a), "BMP"), a, 0


def float_tiff() -> tuple[bytes, np.ndarray, int]:
    a = np.array([[-1.0, 0.0], [1.0, 3.0]], np.float32)
    return save(Image.fromarray(a, "F"), "TIFF"), np.array([[0, 63], [127, 255]], np.uint8), 1


def animated_gif() -> tuple[bytes, np.ndarray, int]:
    frames = [Image.new("RGB", (4, 3), c) for c in (RED, BLUE, GREEN)]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return data, np.full((3, 4, 3), RED, np.uint8), 0


def animated_webp() -> tuple[bytes, np.ndarray, int]:
    frames = [Image.new("RGB", (4, 3), c) for c in (GREEN, RED)]
    data = save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    return data, np.full((3, 4, 3), GREEN, np.uint8), 0


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a JPEG that Pillow wrote; a scan runs to the end of its data."""
    out, i = [], 2
    while i < len(data):
        while data[i + 1] == 0xFF:  # fill bytes
            i += 1
        marker = data[i + 1]
        if marker == 0xD9:
            out.append((marker, i, i + 2))
            break
        end = i + 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker == 0xDA:  # entropy-coded data: up to the next 0xFF that is not a stuffed 0xFF00 or a restart
            while not (data[end] == 0xFF and data[end + 1] != 0 and not 0xD0 <= data[end + 1] <= 0xD7):
                end += 1
        out.append((marker, i, end))
        i = end
    return out


def progressive_jpeg(size: int = 64, gray: bool = False) -> bytes:
    """A progressive JPEG as libjpeg writes one (10 scans in colour, 6 in grayscale), of a smooth gradient."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    a = np.stack(
        [ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1), 255 - ramp[None, :].repeat(size, 0)], -1
    )
    img = Image.fromarray(a[..., 0].astype(np.uint8)) if gray else Image.fromarray(a.astype(np.uint8))
    return save(img, "JPEG", progressive=True, quality=95)


def many_scan_jpeg(size: int = 64, scans: int = 5_000) -> bytes:
    """A progressive JPEG whose last scan (a refinement of the luma AC coefficients) is repeated ``scans`` times.

    libjpeg accepts the repeats (it only warns about a "bogus progression") and makes one more
    pass over the whole picture for each: 5,000 scans of a 2048x2048 picture fit in 100 KB and
    take Pillow about 12 s to decode on a laptop-class core.
    """
    data = save(Image.new("RGB", (size, size), (128, 128, 128)), "JPEG", progressive=True, quality=90)
    segments = jpeg_segments(data)
    own = [seg for seg in segments if seg[0] == 0xDA]
    _, start, end = own[-1]
    eoi = segments[-1][1]
    return data[:eoi] + data[start:end] * (scans - len(own)) + data[eoi:]  # its own 10 scans, then repeats


def progressive() -> tuple[bytes, np.ndarray, int]:
    data = progressive_jpeg(64)
    return data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), 0


def progressive_gray() -> tuple[bytes, np.ndarray, int]:
    data = progressive_jpeg(64, gray=True)
    return data, np.asarray(Image.open(io.BytesIO(data))), 0


GOOD: dict[str, Good] = {
    "EXIF orientation 6 (PNG)": exif_png(6),
    "EXIF orientation 3 (PNG)": exif_png(3),
    "EXIF orientation 8 (PNG)": exif_png(8),
    "EXIF orientation 2, mirrored (PNG)": exif_png(2),
    "EXIF orientation 6 (JPEG)": exif_jpeg,
    "palette": palette,
    "palette with transparency": palette_transparent,
    "CMYK TIFF": cmyk_tiff,
    "CMYK JPEG": cmyk_jpeg,
    "RGBA": rgba,
    "grayscale + alpha": gray_alpha,
    "16-bit grayscale PNG": gray16,
    "16-bit grayscale TIFF": gray16_tiff,
    "1-bit": one_bit,
    "grayscale BMP": grayscale,
    "32-bit float TIFF": float_tiff,
    "animated GIF": animated_gif,
    "animated WebP": animated_webp,
    "progressive JPEG": progressive,
    "progressive grayscale JPEG": progressive_gray,
}


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims ``width`` x ``height`` (its data is one row)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def truncated(fmt: str) -> Callable[[], bytes]:
    def make() -> bytes:
        rng = np.random.default_rng(0)
        data = save(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), fmt)
        return data[: len(data) * 2 // 3]

    return make


BAD: dict[str, tuple[Callable[[], bytes], str]] = {
    "45 MP header (over the 40 MP cap)": (lambda: png_claiming(9000, 5000), "megapixels"),
    "10 gigapixel header": (lambda: png_claiming(100_000, 100_000), "too many pixels"),
    "truncated PNG": (truncated("PNG"), "truncated"),
    "truncated JPEG": (truncated("JPEG"), "truncated"),
    "truncated GIF": (truncated("GIF"), "truncated"),
    "PDF": (lambda: b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "not an image"),
    "EPS (would need Ghostscript)": (lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
    "ICO (format not on the allow-list)": (lambda: save(Image.new("RGB", (16, 16), RED), "ICO"), "not an image"),
    "PCX (format not on the allow-list)": (lambda: save(Image.new("RGB", (4, 4), RED), "PCX"), "not an image"),
    "text": (lambda: b"hello, I am not a picture", "not an image"),
    "empty": (lambda: b"", "empty"),
    "progressive JPEG with 5,000 scans": (lambda: many_scan_jpeg(64, 5_000), "more than 100 scans"),
}
