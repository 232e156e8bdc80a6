"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package, or ``keras.datasets`` elsewhere."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (gzipped or not): magic, dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file.")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(directory / stem)


def load_fashion_mnist(
    directory: Path = DEBIAN_DIR,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)), images uint8 (N, 28, 28)."""
    if directory.exists():
        return (
            (
                read_idx(_find(directory, "train-images-idx3-ubyte")),
                read_idx(_find(directory, "train-labels-idx1-ubyte")),
            ),
            (
                read_idx(_find(directory, "t10k-images-idx3-ubyte")),
                read_idx(_find(directory, "t10k-labels-idx1-ubyte")),
            ),
        )
    import keras

    return keras.datasets.fashion_mnist.load_data()
