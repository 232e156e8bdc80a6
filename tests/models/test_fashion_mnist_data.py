"""The Fashion-MNIST IDX reader, on small synthetic IDX files written here."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from models.fashion_mnist_data import load_fashion_mnist, read_idx


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    header = struct.pack(">HBB", 0, dtype_code, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, array: np.ndarray, gzipped: bool) -> Path:
    data = idx_bytes(array)
    if gzipped:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("gzipped", [False, True])
def test_read_idx_images_and_labels(tmp_path, gzipped):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([9, 0, 3], dtype=np.uint8)
    got_images = read_idx(write(tmp_path / "images-idx3-ubyte", images, gzipped))
    got_labels = read_idx(write(tmp_path / "labels-idx1-ubyte", labels, gzipped))
    assert got_images.dtype == np.uint8 and got_images.shape == (3, 4, 5)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_idx_known_bytes(tmp_path):
    """Header by hand: 0x0000, type 0x08 (ubyte), 2 dims, then 2 and 3 as big-endian uint32."""
    raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255])
    path = tmp_path / "tiny-idx2-ubyte"
    path.write_bytes(raw)
    np.testing.assert_array_equal(read_idx(path), [[1, 2, 3], [4, 5, 255]])


@pytest.mark.parametrize("header", [bytes([1, 0, 8, 1]), bytes([0, 0, 0x0D, 1])], ids=["bad-magic", "float-type"])
def test_read_idx_refuses_other_files(tmp_path, header):
    path = tmp_path / "odd-idx1-ubyte"
    path.write_bytes(header + struct.pack(">I", 2) + bytes(8))
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(path)


@pytest.mark.parametrize("gzipped", [False, True])
def test_load_fashion_mnist_from_a_folder(tmp_path, gzipped):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 6, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 2, dtype=np.uint8),
    }
    for stem, array in arrays.items():
        write(tmp_path / stem, array, gzipped)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(x_test, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])


def test_load_fashion_mnist_names_a_missing_file(tmp_path):
    write(tmp_path / "train-images-idx3-ubyte", np.zeros((1, 2, 2), np.uint8), gzipped=True)
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_fashion_mnist(tmp_path)
