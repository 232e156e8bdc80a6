"""Bad input in the app (issue 2, section 8): a clear message in the UI, no traceback, and the app keeps working.

Each case uploads through the real ``st.file_uploader`` (AppTest stages the bytes the way a
browser would), checks that an ``st.error`` says what is wrong, that no exception reached
the page, and then goes back to a gallery sample and gets a heatmap again.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from interpret.images import MAX_PIXELS


def huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of ``width x height`` pixels, written row by row.

    All-black rows compress to almost nothing, so a 20000x20000 picture is a small file
    that would take 400 MB once decoded: a decompression bomb in miniature.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def small_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def corrupt_png() -> bytes:
    """A real PNG whose pixel data is cut short and scrambled after the header."""
    data = small_png()
    return data[:60] + bytes(b ^ 0x5A for b in data[60:90])


def overlay_shown(at) -> bool:
    return any(" for '" in c for img in at.main.get("image") for c in img.captions)


def error_text(at) -> str:
    return " ".join(e.value for e in at.error)


def back_to_the_gallery(at) -> None:
    at.radio(key="model_source").set_value("Bundled: Fashion-MNIST CNN")
    at.radio(key="image_source").set_value("Sample gallery").run()
    assert not at.exception
    assert not at.error, error_text(at)
    assert overlay_shown(at)


def upload_picture(at, name: str, data: bytes, mime: str):
    at.run()
    assert overlay_shown(at)  # working before the bad input
    at.radio(key="image_source").set_value("Upload a picture").run()
    at.file_uploader(key="image_upload").upload(name, data, mime).run()
    return at


def test_huge_png_is_a_valid_png_that_is_small_on_disk_and_huge_decoded():
    with Image.open(io.BytesIO(huge_png(19, 3))) as img:  # the writer makes real PNGs
        assert img.size == (19, 3) and img.getextrema() == (0, 0)
    data = huge_png(20000, 20000)
    assert len(data) < 200_000
    assert struct.unpack(">II", data[16:24]) == (20000, 20000)
    assert MAX_PIXELS < 20000 * 20000
    with pytest.raises(Image.DecompressionBombError):  # Pillow itself calls it a bomb
        Image.open(io.BytesIO(data))


@pytest.mark.parametrize(
    ("name", "data", "mime", "words"),
    [
        ("notes.txt", b"These are my lecture notes, not a picture.\n" * 20, "text/plain", "not"),
        ("broken.png", corrupt_png(), "image/png", "damaged"),
        ("empty.png", b"", "image/png", "empty"),
    ],
    ids=["not-an-image", "corrupt-image", "empty-file"],
)
def test_bad_picture_upload_shows_a_message_and_the_app_recovers(app_test, name, data, mime, words):
    at = upload_picture(app_test(), name, data, mime)
    assert not at.exception
    assert at.error, "expected an error message"
    assert words in error_text(at).lower()
    assert not overlay_shown(at)
    back_to_the_gallery(at)


def test_huge_picture_upload_is_refused_before_decoding(app_test):
    at = upload_picture(app_test(), "huge.png", huge_png(20000, 20000), "image/png")
    assert not at.exception
    text = error_text(at)
    assert "20000" in text or "large" in text.lower() or "pixels" in text.lower(), text
    assert not overlay_shown(at)
    back_to_the_gallery(at)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("model.keras", b"I am a text file pretending to be a model."),
        ("picture.keras", small_png()),
    ],
    ids=["text", "png-renamed"],
)
def test_model_upload_that_is_not_a_keras_model_shows_a_message_and_the_app_recovers(app_test, name, data):
    at = app_test()
    at.run()
    at.radio(key="model_source").set_value("Upload a .keras model").run()
    at.file_uploader(key="model_upload").upload(name, data, "application/octet-stream").run()
    assert not at.exception
    assert at.error, "expected an error message"
    assert "keras" in error_text(at).lower()
    assert not overlay_shown(at)
    back_to_the_gallery(at)
