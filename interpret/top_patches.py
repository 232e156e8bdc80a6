"""Top-activating patches: the picture regions that excite one channel most.

Girshick, Donahue, Darrell & Malik (2014), "Rich feature hierarchies for accurate object
detection and semantic segmentation", CVPR, arXiv:1311.2524, Fig. 4 ("top regions for
six pool5 units"); Zeiler & Fergus (2014), arXiv:1311.2901, Fig. 2.

For each picture, the channel's map is searched for its largest value; the patch shown is
that unit's receptive field in the picture as the model saw it (resized to the model's input).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from interpret.activations import layer_activations
from interpret.images import read_image
from interpret.progress import Progress
from interpret.receptive_field import field_box, layer_receptive_field
from models.datasets import open_zip, read_zip_entry, zip_pictures
from models.handle import ModelHandle
from models.preprocessing import match_channels, resize_batch, to_pixels

MAX_ZIP_BYTES = 50_000_000
MAX_ZIP_ENTRIES = 500
MAX_ENTRY_BYTES = 20_000_000
MAX_UNCOMPRESSED_BYTES = 200_000_000
MAX_RATIO = 100
ZIP_PICTURE_SIDE = 1024  # pictures from a zip are read scaled down to cover this (patches are far smaller)
PAD_VALUE = 128


@dataclass
class Patch:
    image_index: int
    label: str
    value: float  # the channel's largest activation in this picture
    position: tuple[int, int]  # (row, column) in the activation map
    box: tuple[int, int, int, int]  # top, left, bottom, right in model-input pixels (may reach outside)
    pixels: np.ndarray  # uint8 (size, size, C): the receptive field, grey where it leaves the picture


def model_pixels(m: ModelHandle, images: np.ndarray) -> np.ndarray:
    """Pictures as the model sees them before scaling: uint8 (N, H, W, C) at the input size."""
    h, w, c = m.input_shape
    resized = resize_batch(match_channels(to_pixels(images), c), h, w)
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def crop(picture: np.ndarray, box: tuple[int, int, int, int], pad: int = PAD_VALUE) -> np.ndarray:
    """The box (top, left, bottom, right) of an (H, W, C) picture; parts outside filled with ``pad``."""
    top, left, bottom, right = box
    h, w = picture.shape[:2]
    out = np.full((bottom - top, right - left, *picture.shape[2:]), pad, dtype=picture.dtype)
    y0, y1, x0, x1 = max(top, 0), min(bottom, h), max(left, 0), min(right, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = picture[y0:y1, x0:x1]
    return out


def top_patches(
    m: ModelHandle,
    images: list[np.ndarray] | np.ndarray,
    layer: str,
    channel: int,
    k: int = 9,
    labels: list[str] | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> list[Patch]:
    """The ``k`` pictures whose largest activation of ``layer``/``channel`` is highest, cropped at its receptive field."""
    if len(images) == 0:
        raise ValueError("No pictures to search; add some pictures first.")
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    pixels = np.concatenate([model_pixels(m, img) for img in images], axis=0)
    labels = list(labels) if labels is not None else [f"picture {i + 1}" for i in range(len(pixels))]
    rf = layer_receptive_field(m, layer)
    best: list[tuple[float, int, tuple[int, int]]] = []
    for start in range(0, len(pixels), batch_size):
        progress(start / len(pixels), f"Activations of {layer}: {start}/{len(pixels)} pictures")
        batch = pixels[start : start + batch_size]
        acts = layer_activations(m, m.preprocessing(batch.astype(np.float32)), layer, prepared=True)
        if not 0 <= channel < acts.shape[-1]:
            raise ValueError(f"Channel {channel} does not exist: {layer} has channels 0..{acts.shape[-1] - 1}.")
        maps = acts[..., channel]
        for i, a in enumerate(maps):
            pos = np.unravel_index(int(np.argmax(a)), a.shape)
            best.append((float(a[pos]), start + i, (int(pos[0]), int(pos[1]))))
    progress(1.0, "Cropping the patches")
    best.sort(key=lambda t: (-t[0], t[1]))
    out = []
    for value, idx, pos in best[:k]:
        (top, bottom), (left, right) = field_box(rf, pos)
        box = (top, left, bottom, right)
        out.append(Patch(idx, labels[idx], value, pos, box, crop(pixels[idx], box)))
    return out


def images_from_zip(
    data: bytes,
    max_entries: int = MAX_ZIP_ENTRIES,
    max_entry_bytes: int = MAX_ENTRY_BYTES,
    max_total_bytes: int = MAX_UNCOMPRESSED_BYTES,
    needed: tuple[int, int] | None = (ZIP_PICTURE_SIDE, ZIP_PICTURE_SIDE),
) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Pictures from a zip: (images, their names, messages about the entries that were skipped).

    The archive checks are those of ``models.datasets`` (picture suffixes only, no traversal,
    absolute paths, links or encrypted entries, size and ratio caps); each picture goes
    through ``read_image``, scaled down as it is decoded to cover ``needed`` (the patches are
    cut from the model's input, far smaller), so 30 pictures of 40 MP never sit in memory at
    full size. Directories and hidden files are ignored. Raises ``ValueError`` when the
    archive itself is unusable or holds no readable picture.
    """
    with open_zip(data, MAX_ZIP_BYTES) as archive:
        infos, problems = zip_pictures(archive, max_entries, max_entry_bytes, max_total_bytes, MAX_RATIO)
        images, names = [], []
        for info in infos:
            try:
                raw = read_zip_entry(archive, info, max_entry_bytes)
                images.append(read_image(raw, needed=needed, label="it"))
                names.append(PurePosixPath(info.filename).name)
            except (ValueError, zipfile.BadZipFile, RuntimeError, OSError, EOFError) as exc:
                problems.append(f"{info.filename}: skipped, {exc}")
    if not images:
        detail = " " + " ".join(problems[:3]) if problems else ""
        raise ValueError("The zip holds no readable picture." + detail)
    return images, names, problems
