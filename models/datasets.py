"""Datasets: the bundled Fashion-MNIST test set, or a folder / ``.zip`` with one sub-folder per class.

>>> from models.datasets import load_dataset
>>> ds = load_dataset("fashion-mnist-test")  # 10,000 pictures, offline (Debian's dataset-fashion-mnist)
>>> ds = load_dataset("photos/")  # photos/cat/1.jpg, photos/dog/2.png, ... (the ImageFolder convention)
>>> ds = load_dataset("photos.zip")  # the same in a zip (or its bytes, as uploaded)
>>> ds.class_names, len(ds), ds.labels  # labels: int64 (N,), indices into class_names
>>> ds[0]  # uint8 (H, W[, 3]), read when asked for
>>> for indices, pixels in ds.batches(256, shape=(28, 28, 1)):  # pixels: uint8 (n, 28, 28, 1)
...     ...

Class names are the sorted names of the sub-folders (the order of Keras'
``image_dataset_from_directory`` and torchvision's ``ImageFolder``), so label ``i`` is the
class a model trained that way calls ``i``. Pictures are ordered round robin over the classes
(each class's first picture, then each class's second, ...), so the first N of them hold
every class. A folder or zip holding pictures but no sub-folders is an unlabeled dataset (no
class names, labels -1).

Folders and zips are what users bring, so they pass the same kind of checks as uploads:

- the archive: only entries named like pictures are read (an allow-list of suffixes); no
  ``..``, absolute paths, drive letters, backslashes, symlinks or encrypted entries; caps on
  the zip's size, its entry count, the size each entry unpacks to, the total, and the
  compression ratio;
- a cap on the number of pictures (``DatasetLimits``, from ``CNN_LENS_DATASET_*`` variables);
- every picture through the strict decoder (:func:`models.images.read_image`).

An entry that fails a check, or a picture that will not decode, is reported by name in
``ds.problems`` and skipped; it never stops a run. Listing problems are known when the
dataset is loaded; a damaged picture is found when it is read, and added then.

Memory stays bounded: a folder or zip is only *listed* when loaded. Pictures are read one at
a time, when asked for, and scaled down as they are decoded to what the caller needs
(``shape=`` a model's input, ``needed=`` a thumbnail); nothing holds the full-size pictures.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from models.images import ImageError, read_image
from models.preprocessing import match_channels, resize_batch, to_pixels

BUNDLED_DATASETS = ("fashion-mnist-test", "fashion-mnist-train")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
MB = 1_000_000


class DatasetError(ValueError):
    """The dataset as a whole cannot be used (not a zip, over a cap, no pictures); the message says why."""


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else float(default)
    except ValueError:
        raise ValueError(f"The environment variable {name}={raw!r} must be a number.") from None


@dataclass(frozen=True)
class DatasetLimits:
    """Caps on a folder or zip of pictures; ``from_env`` reads the ``CNN_LENS_DATASET_*`` variables."""

    max_pictures: int = 100_000  # ImageNet's validation set is 50,000
    max_zip_bytes: int = 4_000 * MB
    max_entries: int = 200_000  # every entry of a zip, pictures or not
    max_entry_bytes: int = 50 * MB  # one picture (read_image's own cap on a file)
    max_total_bytes: int = 20_000 * MB  # what the zip unpacks to, all entries together
    max_ratio: float = 100.0  # uncompressed / compressed size of one entry

    @classmethod
    def from_env(cls) -> DatasetLimits:
        d = cls()
        return cls(
            max_pictures=int(_env_number("CNN_LENS_DATASET_MAX_PICTURES", d.max_pictures)),
            max_zip_bytes=int(_env_number("CNN_LENS_DATASET_MAX_ZIP_MB", d.max_zip_bytes / MB) * MB),
            max_entries=int(_env_number("CNN_LENS_DATASET_MAX_ENTRIES", d.max_entries)),
            max_entry_bytes=int(_env_number("CNN_LENS_DATASET_MAX_ENTRY_MB", d.max_entry_bytes / MB) * MB),
            max_total_bytes=int(_env_number("CNN_LENS_DATASET_MAX_UNPACKED_MB", d.max_total_bytes / MB) * MB),
            max_ratio=_env_number("CNN_LENS_DATASET_MAX_RATIO", d.max_ratio),
        )


# ---- zips: which entries are pictures that may be read ----------------------------------------
def _ignored(name: str) -> bool:
    """Directories, hidden files and macOS resource forks: not reported, just passed over."""
    parts = PurePosixPath(name).parts
    return not parts or name.endswith("/") or "__MACOSX" in parts or any(p.startswith(".") for p in parts)


def unsafe_name(name: str) -> str | None:
    """Why a zip entry's name is refused (traversal, absolute path, ...), or None if it is a plain relative path."""
    if "\\" in name:
        return "its name has a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "its path is absolute"
    if ".." in PurePosixPath(name).parts:
        return "its path leads out of the archive (..)"
    if "\x00" in name:
        return "its name has a NUL character"
    return None


def zip_entry_problem(info: zipfile.ZipInfo, max_entry_bytes: int, max_ratio: float) -> str | None:
    """Why one entry of a picture zip is skipped, or None if it may be read as a picture."""
    name = info.filename
    why = unsafe_name(name)
    if why:
        return f"{name}: skipped, {why}."
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"{name}: skipped, it is a symbolic link."
    if info.flag_bits & 0x1:
        return f"{name}: skipped, it is encrypted."
    if not PurePosixPath(name).name.lower().endswith(PICTURE_SUFFIXES):
        return f"{name}: skipped, not a picture (expected {', '.join(PICTURE_SUFFIXES)})."
    if info.file_size > max_entry_bytes:
        return f"{name}: skipped, {info.file_size / MB:.0f} MB is over the {max_entry_bytes / MB:.0f} MB limit."
    if info.compress_size and info.file_size / info.compress_size > max_ratio:
        return f"{name}: skipped, it is compressed suspiciously well (a zip bomb?)."
    return None


def open_zip(data: bytes | str | os.PathLike, max_zip_bytes: int) -> zipfile.ZipFile:
    """A ``ZipFile`` over bytes or a path, refused past the size cap or when it is not a zip."""
    size = len(data) if isinstance(data, (bytes, bytearray)) else Path(data).stat().st_size
    if size > max_zip_bytes:
        raise DatasetError(f"The zip is {size / MB:.0f} MB; the limit is {max_zip_bytes / MB:.0f} MB.")
    try:
        return zipfile.ZipFile(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)
    except (zipfile.BadZipFile, OSError):
        raise DatasetError("This is not a zip file. Use a .zip that holds PNG or JPEG pictures.") from None


def zip_pictures(
    archive: zipfile.ZipFile, max_entries: int, max_entry_bytes: int, max_total_bytes: int, max_ratio: float
) -> tuple[list[zipfile.ZipInfo], list[str]]:
    """The entries of a zip that may be read as pictures (in archive order), and why the others were skipped.

    Refuses the whole archive (``DatasetError``) past the entry-count or unpacked-size cap.
    """
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if len(infos) > max_entries:
        raise DatasetError(f"The zip holds {len(infos)} files; the limit is {max_entries}.")
    total = sum(i.file_size for i in infos)
    if total > max_total_bytes:
        raise DatasetError(f"The zip unpacks to {total / MB:.0f} MB; the limit is {max_total_bytes / MB:.0f} MB.")
    keep, problems, seen = [], [], set()
    for info in infos:
        if _ignored(info.filename) and unsafe_name(info.filename) is None:
            continue
        problem = zip_entry_problem(info, max_entry_bytes, max_ratio)
        if problem is None and info.filename in seen:
            problem = f"{info.filename}: skipped, the zip holds it twice."
        if problem:
            problems.append(problem)
            continue
        seen.add(info.filename)
        keep.append(info)
    return keep, problems


def read_zip_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_entry_bytes: int) -> bytes:
    """The bytes of one entry, never more than the cap (a lying header cannot make it read more)."""
    with archive.open(info) as fh:
        raw = fh.read(max_entry_bytes + 1)
    if len(raw) > max_entry_bytes:
        raise ImageError(f"it unpacks to more than {max_entry_bytes / MB:.0f} MB")
    return raw


# ---- the dataset --------------------------------------------------------------------------------
class _Source:
    """Where the pictures of a dataset come from: in memory, files of a folder, or entries of a zip."""

    def read(self, index: int, needed: tuple[int, int] | None) -> np.ndarray:
        raise NotImplementedError

    def raw(self, index: int) -> bytes:
        """The picture's file as stored (for "open in the app" and downloads)."""
        raise NotImplementedError


class _Arrays(_Source):
    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def read(self, index: int, needed: tuple[int, int] | None) -> np.ndarray:
        return self.images[index]

    def raw(self, index: int) -> bytes:
        from models.images import encode_png

        return encode_png(self.images[index])


class _Pictures(_Source):
    """Pictures of different sizes already in memory (the app's samples, a notebook's list)."""

    def __init__(self, pictures: list[np.ndarray]) -> None:
        self.pictures = pictures

    def read(self, index: int, needed: tuple[int, int] | None) -> np.ndarray:
        return self.pictures[index]

    def raw(self, index: int) -> bytes:
        from models.images import encode_png

        return encode_png(self.pictures[index])


class _Files(_Source):
    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def read(self, index: int, needed: tuple[int, int] | None) -> np.ndarray:
        return read_image(self.paths[index], needed=needed, label="it")

    def raw(self, index: int) -> bytes:
        return self.paths[index].read_bytes()


class _ZipEntries(_Source):
    """Entries of one zip, read through one open archive (a lock keeps its file position safe)."""

    def __init__(self, data: bytes | Path, names: list[str], max_entry_bytes: int) -> None:
        self.data = data
        self.names = names
        self.max_entry_bytes = max_entry_bytes
        self._archive: zipfile.ZipFile | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # picklable (Ray, caches): the open archive is not
        return {"data": self.data, "names": self.names, "max_entry_bytes": self.max_entry_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["data"], state["names"], state["max_entry_bytes"])

    def raw(self, index: int) -> bytes:
        with self._lock:
            if self._archive is None:
                self._archive = zipfile.ZipFile(io.BytesIO(self.data) if isinstance(self.data, bytes) else self.data)
            try:
                return read_zip_entry(self._archive, self._archive.getinfo(self.names[index]), self.max_entry_bytes)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, ValueError) as exc:
                if isinstance(exc, ImageError):
                    raise
                raise ImageError(f"the zip entry could not be unpacked ({exc})") from exc

    def read(self, index: int, needed: tuple[int, int] | None) -> np.ndarray:
        return read_image(self.raw(index), needed=needed, label="it")


@dataclass(eq=False)
class Dataset:
    """Labelled pictures: ``len(ds)``, ``ds[i]`` (uint8, read on demand), ``ds.labels``, ``ds.class_names``."""

    name: str
    class_names: list[str]
    labels: np.ndarray  # int64 (N,): an index into class_names, -1 when unlabeled
    ids: list[str]  # each picture's name: its path inside the folder or zip, or "<dataset>/<index>"
    kind: str  # "bundled" | "folder" | "zip" | "pictures"
    listing_problems: list[str] = field(default_factory=list)  # entries skipped when the dataset was listed
    _source: _Source = field(default=None, repr=False)  # type: ignore[assignment]
    _bad: dict[int, str] = field(default_factory=dict, repr=False)  # pictures found damaged when read
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.read(index)

    @property
    def labeled(self) -> bool:
        return bool(self.class_names)

    @property
    def problems(self) -> list[str]:
        """Every entry skipped so far: at listing, then the pictures that failed to decode when read."""
        with self._lock:
            bad = [self._bad[i] for i in sorted(self._bad)]
        return [*self.listing_problems, *bad]

    def problem(self, index: int) -> str | None:
        """Why picture ``index`` was skipped when it was read, or None."""
        with self._lock:
            return self._bad.get(int(index))

    def label_name(self, index: int) -> str:
        label = int(self.labels[index])
        return self.class_names[label] if 0 <= label < len(self.class_names) else ""

    def read(self, index: int, needed: tuple[int, int] | None = None) -> np.ndarray:
        """Picture ``index`` as uint8 (H, W[, 3]); ``needed=(h, w)`` scales it down as it is decoded.

        A picture that does not decode raises ``ImageError`` naming it, and is recorded in ``problems``.
        """
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name} has pictures 0..{len(self) - 1}; there is no picture {index}.")
        try:
            return self._source.read(index, needed)
        except ImageError as exc:
            message = f"{self.ids[index]}: skipped, {exc}"
            with self._lock:
                self._bad[index] = message
            raise ImageError(message) from exc

    def raw(self, index: int) -> bytes:
        """Picture ``index``'s file as stored (PNG for the bundled arrays)."""
        return self._source.raw(int(index))

    def model_pixels(self, index: int, shape: tuple[int, int, int]) -> np.ndarray:
        """Picture ``index`` as a model of input ``shape`` (h, w, c) sees it: uint8 (h, w, c)."""
        h, w, c = shape
        picture = self.read(index, needed=(h, w))
        pixels = resize_batch(match_channels(to_pixels(picture), c), h, w)[0]
        return np.clip(np.round(pixels), 0, 255).astype(np.uint8)

    def batches(
        self,
        batch_size: int,
        shape: tuple[int, int, int],
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(indices, uint8 pixels (n, h, w, c)) batch by batch, each picture read and scaled as it comes.

        Pictures that do not decode are left out of their batch (and listed in ``problems``);
        a batch may therefore be short, or empty.
        """
        order = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        size = max(1, int(batch_size))
        h, w, c = shape
        fast = isinstance(self._source, _Arrays)
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            if fast:  # the bundled arrays: one vectorised resize for the batch
                pictures = self._source.images[chunk]
                pixels = resize_batch(match_channels(to_pixels(pictures), c), h, w) if len(chunk) else None
                out = np.clip(np.round(pixels), 0, 255).astype(np.uint8) if pixels is not None else None
                yield chunk, out if out is not None else np.zeros((0, h, w, c), np.uint8)
                continue
            kept, rows = [], []
            for i in chunk:
                try:
                    rows.append(self.model_pixels(int(i), shape))
                    kept.append(int(i))
                except ImageError:
                    continue
            yield np.asarray(kept, dtype=np.int64), np.stack(rows) if rows else np.zeros((0, h, w, c), np.uint8)

    def head(self, limit: int | None) -> Dataset:
        """The first ``limit`` pictures (all of them for None)."""
        if limit is None or limit >= len(self):
            return self
        return _subset(self, int(max(0, limit)))


def _subset(ds: Dataset, n: int) -> Dataset:
    source = ds._source
    if isinstance(source, _Arrays):
        source = _Arrays(source.images[:n])
    elif isinstance(source, _Pictures):
        source = _Pictures(source.pictures[:n])
    elif isinstance(source, _Files):
        source = _Files(source.paths[:n])
    elif isinstance(source, _ZipEntries):
        source = _ZipEntries(source.data, source.names[:n], source.max_entry_bytes)
    return Dataset(ds.name, ds.class_names, ds.labels[:n], ds.ids[:n], ds.kind, list(ds.listing_problems), source)


def _normal(name: str) -> str:
    """Class names as folders can spell them: 'T-shirt/top' and 'T-shirt_top' both read 'tshirttop'."""
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def label_map(dataset_classes: Sequence[str], model_classes: Sequence[str]) -> tuple[np.ndarray, str]:
    """For each dataset class, the model's index of that class (-1: the model has none), and how they matched.

    - ``"name"``: by name (case, spaces and punctuation ignored), when some dataset classes are model classes;
    - ``"position"``: class ``i`` is the model's class ``i``, when no name matches and the counts are equal
      (the sorted folder order in which Keras' ``image_dataset_from_directory`` numbers classes);
    - ``"none"``: nothing matches (the labels cannot be compared with the predictions).
    """
    index: dict[str, int] = {}
    for i, c in enumerate(model_classes):
        index.setdefault(_normal(c), i)
    by_name = np.asarray([index.get(_normal(c), -1) for c in dataset_classes], dtype=np.int64)
    if len(dataset_classes) and np.any(by_name >= 0):
        return by_name, "name"
    if len(dataset_classes) and len(dataset_classes) == len(model_classes):
        return np.arange(len(dataset_classes), dtype=np.int64), "position"
    return np.full(len(dataset_classes), -1, dtype=np.int64), "none"


def model_labels(ds: Dataset, model_classes: Sequence[str]) -> tuple[np.ndarray, str]:
    """Every picture's true class as the model's class index (-1 where unknown), and how classes matched."""
    mapping, how = label_map(ds.class_names, model_classes)
    labels = np.where(ds.labels >= 0, mapping[np.clip(ds.labels, 0, None)] if len(mapping) else -1, -1)
    return labels.astype(np.int64), how


# ---- building one -------------------------------------------------------------------------------
def _labelled(relative: list[str]) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """(kept relative paths, class names, labels, problems) from paths of pictures by the ImageFolder rule."""
    in_folders = [r for r in relative if len(PurePosixPath(r).parts) >= 2]
    if not in_folders:  # pictures only, no class folders: an unlabeled dataset
        kept = sorted(relative)
        return kept, [], np.full(len(kept), -1, dtype=np.int64), []
    problems = [f"{r}: skipped, it is not inside a class folder." for r in sorted(set(relative) - set(in_folders))]
    classes = sorted({PurePosixPath(r).parts[0] for r in in_folders})
    per_class: dict[str, list[str]] = {c: [] for c in classes}
    for r in sorted(in_folders):
        per_class[PurePosixPath(r).parts[0]].append(r)
    # Round robin over the classes (the first of each class, then the second, ...), so that the
    # first N pictures (a limit, a quick look) hold every class, not only the first one.
    kept, labels = [], []
    for rank in range(max(len(v) for v in per_class.values())):
        for label, c in enumerate(classes):
            if rank < len(per_class[c]):
                kept.append(per_class[c][rank])
                labels.append(label)
    return kept, classes, np.asarray(labels, dtype=np.int64), problems


def _common_root(names: list[str]) -> str:
    """A single top folder wrapping the class folders ("mydata/cat/1.png"): stripped from the names."""
    prefix = ""
    while True:
        parts = [PurePosixPath(n[len(prefix) :]).parts for n in names]
        if not parts or any(len(p) < 3 for p in parts) or len({p[0] for p in parts}) != 1:
            return prefix
        prefix += parts[0][0] + "/"


def _check_count(n: int, limits: DatasetLimits, what: str) -> None:
    if n > limits.max_pictures:
        raise DatasetError(
            f"{what} holds {n:,} pictures; the limit is {limits.max_pictures:,} (CNN_LENS_DATASET_MAX_PICTURES). "
            "Use fewer pictures, or a limit."
        )


def _from_zip(data: bytes | Path, name: str, limits: DatasetLimits, limit: int | None) -> Dataset:
    with open_zip(data, limits.max_zip_bytes) as archive:
        infos, problems = zip_pictures(
            archive, limits.max_entries, limits.max_entry_bytes, limits.max_total_bytes, limits.max_ratio
        )
    names = [i.filename for i in infos]
    root = _common_root(names)
    kept, classes, labels, more = _labelled([n[len(root) :] for n in names])
    if limit is not None:
        kept, labels = kept[:limit], labels[:limit]
    _check_count(len(kept), limits, f"The zip {name}")
    if not kept:
        detail = " " + " ".join(problems[:3]) if problems else ""
        raise DatasetError(f"The zip {name} holds no picture CNN Lens can read.{detail}")
    source = _ZipEntries(data, [root + k for k in kept], limits.max_entry_bytes)
    return Dataset(name, classes, labels, kept, "zip", problems + more, source)


def _from_folder(root: Path, limits: DatasetLimits, limit: int | None) -> Dataset:
    resolved = root.resolve()
    relative, problems = [], []
    for folder, dirs, files in os.walk(root):  # symlinked folders are not followed
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        for f in sorted(files):
            if f.startswith("."):
                continue
            path = Path(folder) / f
            rel = path.relative_to(root).as_posix()
            if not f.lower().endswith(PICTURE_SUFFIXES):
                problems.append(f"{rel}: skipped, not a picture (expected {', '.join(PICTURE_SUFFIXES)}).")
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(resolved):
                problems.append(f"{rel}: skipped, it is a link to a file outside the folder.")
                continue
            relative.append(rel)
            if len(relative) > limits.max_pictures and limit is None:
                _check_count(len(relative), limits, f"The folder {root}")
    kept, classes, labels, more = _labelled(relative)
    if limit is not None:
        kept, labels = kept[:limit], labels[:limit]
    _check_count(len(kept), limits, f"The folder {root}")
    if not kept:
        raise DatasetError(f"The folder {root} holds no pictures ({', '.join(PICTURE_SUFFIXES)}).")
    return Dataset(
        root.name or str(root), classes, labels, kept, "folder", problems + more, _Files([root / k for k in kept])
    )


def _bundled(name: str, limit: int | None) -> Dataset:
    from models.class_names import read_asset_names
    from models.fashion_mnist_data import DEBIAN_DIR, _find, load_fashion_mnist, read_idx

    stem = "t10k" if name == "fashion-mnist-test" else "train"
    if DEBIAN_DIR.exists():  # only the split asked for (the training split is six times larger)
        images = read_idx(_find(DEBIAN_DIR, f"{stem}-images-idx3-ubyte"))
        labels = read_idx(_find(DEBIAN_DIR, f"{stem}-labels-idx1-ubyte"))
    else:
        train, test = load_fashion_mnist()
        images, labels = test if stem == "t10k" else train
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    images = np.ascontiguousarray(images)
    images.setflags(write=False)
    ids = [f"{name}/{i:05d}" for i in range(len(images))]
    classes = read_asset_names("fashion_mnist_classes.txt")
    return Dataset(name, classes, labels.astype(np.int64), ids, "bundled", [], _Arrays(images))


def from_pictures(
    pictures: Sequence[np.ndarray],
    ids: Sequence[str] | None = None,
    name: str = "pictures",
    class_names: Sequence[str] = (),
    labels: Sequence[int] | None = None,
) -> Dataset:
    """A dataset of pictures already in memory (uint8 or 0..1 float, grey or colour, any sizes), unlabeled by default."""
    if not len(pictures):
        raise DatasetError("No pictures: give at least one.")
    kept = [np.clip(np.round(to_pixels(p)[0]), 0, 255).astype(np.uint8) for p in pictures]
    ids = [f"{name}/{i}" for i in range(len(kept))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(kept):
        raise DatasetError(f"{len(kept)} pictures but {len(ids)} names.")
    labels = np.full(len(kept), -1, np.int64) if labels is None else np.asarray(labels, np.int64)
    if len(labels) != len(kept):
        raise DatasetError(f"{len(kept)} pictures but {len(labels)} labels.")
    return Dataset(name, list(class_names), labels, ids, "pictures", [], _Pictures(kept))


def load_dataset(
    source: str | os.PathLike | bytes,
    name: str | None = None,
    limit: int | None = None,
    limits: DatasetLimits | None = None,
) -> Dataset:
    """A bundled dataset by name, a folder or a ``.zip`` (path or bytes) with one sub-folder per class.

    ``limit``: only the first pictures (in the dataset's order). Raises ``DatasetError`` (a
    ``ValueError``) with a message a person can act on when the dataset cannot be used at all.
    """
    limits = limits or DatasetLimits.from_env()
    if limit is not None and int(limit) < 1:
        raise DatasetError(f"limit={limit}: expected 1 or more pictures.")
    limit = None if limit is None else int(limit)
    if isinstance(source, (bytes, bytearray)):
        return _from_zip(bytes(source), name or "upload.zip", limits, limit)
    key = str(source)
    if key in BUNDLED_DATASETS:
        return _bundled(key, limit)
    path = Path(key)
    if path.is_dir():
        return _from_folder(path, limits, limit)
    if path.is_file():
        return _from_zip(path, name or path.name, limits, limit)
    raise DatasetError(
        f"Unknown dataset {key!r}: give {' or '.join(BUNDLED_DATASETS)}, a folder with one sub-folder per class, "
        "or a .zip of one."
    )


__all__ = [
    "BUNDLED_DATASETS",
    "PICTURE_SUFFIXES",
    "Dataset",
    "DatasetError",
    "DatasetLimits",
    "from_pictures",
    "label_map",
    "load_dataset",
    "model_labels",
    "open_zip",
    "read_zip_entry",
    "zip_entry_problem",
    "zip_pictures",
]
