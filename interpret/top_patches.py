"""Top-activating patches: the picture regions that excite one channel most.

Girshick, Donahue, Darrell & Malik (2014), "Rich feature hierarchies for accurate object
detection and semantic segmentation", CVPR, arXiv:1311.2524, Fig. 4 ("top regions for
six pool5 units"); Zeiler & Fergus (2014), arXiv:1311.2901, Fig. 2.

For each picture, the channel's map is searched for its largest value; the patch shown is
that unit's receptive field in the picture as the model saw it (resized to the model's input).
The search over many pictures is :mod:`interpret.activation_index` (every channel in one pass),
so a page that has the index cuts the patches of any channel without a second pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interpret.activation_index import ActivationIndex, index_activations
from interpret.progress import Progress
from interpret.receptive_field import Field, field_box, layer_receptive_field
from models.datasets import Dataset, from_pictures
from models.handle import ModelHandle

PAD_VALUE = 128


@dataclass
class Patch:
    image_index: int
    label: str
    value: float  # the channel's largest activation in this picture
    position: tuple[int, int]  # (row, column) in the activation map
    box: tuple[int, int, int, int]  # top, left, bottom, right in model-input pixels (may reach outside)
    pixels: np.ndarray  # uint8 (size, size, C): the receptive field, grey where it leaves the picture


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
    ids = list(labels) if labels is not None else [f"picture {i + 1}" for i in range(len(images))]
    dataset = from_pictures(list(images), ids=ids)
    index = index_activations(m, dataset, layer, batch_size=batch_size, progress=progress)
    return patches_of(index, dataset, m.input_shape, layer_receptive_field(m, layer), channel, k)


def patches_of(
    index: ActivationIndex,
    dataset: Dataset,
    input_shape: tuple[int, int, int],
    field: Field,
    channel: int,
    k: int = 9,
) -> list[Patch]:
    """The ``k`` strongest pictures of ``channel`` in the index, each cut at the receptive field of its peak unit."""
    out = []
    for pos in index.strongest(channel, k, by="peak"):
        i = int(index.indices[pos])
        where = (int(index.rows[pos, channel]), int(index.cols[pos, channel]))
        (top, bottom), (left, right) = field_box(field, where)
        box = (top, left, bottom, right)
        out.append(
            Patch(
                i,
                picture_label(dataset, i),
                float(index.peaks[pos, channel]),
                where,
                box,
                crop(dataset.model_pixels(i, input_shape), box),
            )
        )
    return out


def picture_label(dataset: Dataset, i: int) -> str:
    """ "Coat 00017" for a bundled picture, "cat 1.png" from a zip, the name given for pictures in memory."""
    name = dataset.ids[i] if dataset.kind == "pictures" else dataset.ids[i].rsplit("/", 1)[-1]
    cls = dataset.label_name(i)
    return f"{cls} {name}" if cls else name
