"""``cnn-lens batch``: explanations over a whole dataset, written shard by shard, on this machine or on Ray.

    run_batch(BatchJob(model="fashion-mnist-cnn", data="fashion-mnist-test", out=Path("out"),
                       settings=BatchSettings(methods=["gradcam", "occlusion"], metrics=["deletion"])),
              engine="local")

Output, in ``out/``:

- ``results.parquet``: one row per picture x method (``interpret.batch.ROW_COLUMNS``: index, id,
  label, label_name, predicted, predicted_name, probability, correct, method, target, target_name,
  target_probability, score, then ``deletion_auc`` / ``insertion_auc`` when asked, and where the
  row's heatmap is: ``heatmap_file`` (relative to ``out/``) and ``heatmap_row``, with
  ``heatmap_height`` and ``heatmap_width``), plus one row per picture that could not be read,
  with ``error`` set and no method;
- ``heatmaps/``: the heatmaps, one float32 ``.npy`` (rows, height, width) per shard, row ``k``
  for the shard's row ``k``; ``np.load(..., mmap_mode="r")`` reads them without loading all
  (:func:`read_heatmaps` does it for a table of rows). A list column in Parquet took a fifth of
  the engine's time to encode here, and 50,000 ImageNet maps are 10 GB;
- ``summary.json``: pictures, accuracy (with per-class accuracy and the most confused pairs),
  per-method means of the metrics (with which way is better), the bad pictures by name, timing;
- ``shards/``: the pictures in fixed chunks of ``shard_size``, each written atomically when
  complete, with a hash of its pictures' ids and labels. A rerun with the same model and settings
  skips every finished shard whose pictures are unchanged (a larger ``--limit`` reuses them too);
  ``manifest.json`` records the model and settings, and a rerun with others is refused.

Engines: ``local`` runs the batches in this process; ``ray`` (:mod:`serving.batch_ray`, which
alone imports Ray) runs them on Ray Data actors, each loading the model once. Both call
:func:`shard_columns`, so they write the same rows.

A model file passes the same checks as an upload (``models.safety.check_file``) before Keras
reads it, here and again in every Ray actor.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interpret.batch import METRIC_COLUMNS, BatchSettings, batch_rows
from interpret.batching import best_batch_size
from models import BUNDLED, ModelHandle, load
from models.datasets import Dataset, load_dataset, model_labels

COMPRESSION = "lz4"  # ten times faster to write than zstd here (float heatmaps barely compress), files 15% larger
MAX_BATCH_BYTES = 256_000_000  # the largest batch choose_batch_size tries, as float32 model input
FORMAT = 2  # bump when the rows change meaning: old shards are then recomputed (2: heatmaps in .npy files)
DICTIONARY_COLUMNS = ("label_name", "predicted_name", "method", "target_name", "heatmap_file")
READ_AHEAD = 2  # batches read ahead of the model by the local engine
STRING_COLUMNS = ("id", "label_name", "predicted_name", "method", "target_name", "error")
HEATMAP_DIR = "heatmaps"


@dataclass
class BatchJob:
    """What to explain, with what, and where the results go."""

    model: str  # a bundled or zoo name, or a .keras path
    data: str  # a bundled dataset name, a folder or a .zip
    out: Path
    settings: BatchSettings
    limit: int | None = None
    class_names: list[str] | None = None  # for a .keras file
    preprocessing: str = "0..1"
    weights: str | None = "imagenet"  # zoo models
    shard_size: int = 1024
    batch_size: int | None = None  # None: the handle's measured best batch size
    restart: bool = False  # drop earlier shards instead of resuming


def is_model_file(spec: str) -> bool:
    return spec.endswith(".keras") or os.path.sep in spec or os.path.exists(spec)


def load_model(job: BatchJob) -> ModelHandle:
    """The model, through ``models.load`` (a file is checked like an upload before Keras reads it)."""
    return load(job.model, class_names=job.class_names, weights=job.weights, preprocessing=job.preprocessing)


def model_identity(job: BatchJob) -> dict[str, Any]:
    if is_model_file(job.model):
        digest = hashlib.sha256(Path(job.model).read_bytes()).hexdigest()
        return {
            "file": Path(job.model).name,
            "sha256": digest,
            "class_names": job.class_names,
            "prep": job.preprocessing,
        }
    return {"name": job.model, "weights": None if job.model == BUNDLED else job.weights}


def manifest_of(job: BatchJob, ds: Dataset) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": model_identity(job),
        "data": {"source": str(job.data), "classes": ds.class_names},
        "settings": asdict(job.settings),
        "shard_size": job.shard_size,
    }


def ids_digest(ds: Dataset, start: int, stop: int) -> str:
    h = hashlib.sha256()
    for i in range(start, stop):
        h.update(f"{ds.ids[i]}\0{int(ds.labels[i])}\n".encode())
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class Shard:
    start: int
    stop: int
    digest: str

    @property
    def name(self) -> str:
        return f"shard-{self.start:09d}-{self.stop:09d}.parquet"

    @property
    def heatmap_file(self) -> str:
        """Its heatmaps, relative to the output folder."""
        return f"{HEATMAP_DIR}/shard-{self.start:09d}-{self.stop:09d}.npy"


def plan_shards(ds: Dataset, shard_size: int) -> list[Shard]:
    n, size = len(ds), max(1, int(shard_size))
    return [Shard(s, min(s + size, n), ids_digest(ds, s, min(s + size, n))) for s in range(0, n, size)]


# ---- the work of one batch, shared by the engines ------------------------------------------------
@dataclass
class Labels:
    """Each picture's true class as the model's class index, and the dataset's name for it."""

    model_index: np.ndarray  # int64 (N,), -1 where unknown
    names: list[str]
    matched: str  # how the dataset's classes matched the model's: "name" | "position" | "none"

    @classmethod
    def of(cls, ds: Dataset, m: ModelHandle) -> Labels:
        index, how = model_labels(ds, m.class_names) if ds.labeled else (np.full(len(ds), -1, np.int64), "none")
        return cls(index, [ds.label_name(i) for i in range(len(ds))], how)


def error_rows(ds: Dataset, labels: Labels, bad: list[int], messages: dict[int, str], area: int) -> dict[str, Any]:
    k = len(bad)
    return {
        "index": np.asarray(bad, dtype=np.int64),
        "id": np.asarray([ds.ids[i] for i in bad], dtype=object),
        "label": labels.model_index[bad] if k else np.zeros(0, np.int64),
        "label_name": np.asarray([labels.names[i] for i in bad], dtype=object),
        "error": np.asarray([messages.get(i, "could not be read") for i in bad], dtype=object),
        "heatmap": np.zeros((k, area), np.float32),
    }


@dataclass
class ReadBatch:
    """One batch's pictures as read from the dataset: those that decoded, and why the others did not."""

    indices: np.ndarray  # int64: every picture asked for
    kept: np.ndarray  # int64: those that decoded, in order
    pixels: np.ndarray  # uint8 (len(kept), H, W, C) at the model's input size
    prepared: np.ndarray | None  # m.prepare(pixels): the model's input
    messages: dict[int, str]  # index -> why it could not be read


def read_batch(m: ModelHandle, ds: Dataset, indices: np.ndarray) -> ReadBatch:
    """The pictures ``indices``, read (and scaled) as they come, and prepared for the model: unreadable ones
    are left out and named by the dataset."""
    indices = np.asarray(indices, dtype=np.int64)
    kept, pixels = next(ds.batches(max(1, len(indices)), m.input_shape, indices))
    kept = np.asarray(kept, dtype=np.int64)
    messages: dict[int, str] = {}
    if len(kept) < len(indices):
        kept_set = set(kept.tolist())
        messages = {int(i): ds.problem(int(i)) or "could not be read" for i in indices if int(i) not in kept_set}
    return ReadBatch(indices, kept, pixels, m.prepare(pixels) if len(kept) else None, messages)


def batch_columns(
    m: ModelHandle, ds: Dataset, labels: Labels, batch: ReadBatch, settings: BatchSettings
) -> dict[str, np.ndarray]:
    """Rows for a batch read by :func:`read_batch`: one per picture x method, one error row per unreadable picture."""
    h, w, _ = m.input_shape
    kept = batch.kept
    parts = []
    if len(kept):
        parts.append(
            batch_rows(
                m,
                batch.pixels,
                labels.model_index[kept],
                [ds.ids[i] for i in kept],
                kept,
                settings,
                [labels.names[i] for i in kept],
                prepared=batch.prepared,
            )
        )
    if batch.messages:
        bad = [int(i) for i in batch.indices if int(i) in batch.messages]
        parts.append(error_rows(ds, labels, bad, batch.messages, h * w))
    return normalise(parts, settings, h * w)


def shard_columns(
    m: ModelHandle, ds: Dataset, labels: Labels, indices: np.ndarray, settings: BatchSettings
) -> dict[str, np.ndarray]:
    """Rows for the pictures ``indices``: one per picture x method, one error row per unreadable picture."""
    return batch_columns(m, ds, labels, read_batch(m, ds, indices), settings)


DERIVED = ("id", "label_name", "predicted_name", "target_name")  # rebuilt from indices and class numbers


def to_wire(columns: dict[str, np.ndarray], settings: BatchSettings) -> dict[str, np.ndarray]:
    """The columns without the strings the driver can rebuild (what a Ray actor sends back: less to move)."""
    out = {k: v for k, v in columns.items() if k not in (*DERIVED, "method")}
    rank = {name: i for i, name in enumerate(settings.methods)}
    out["method_code"] = np.asarray([rank.get(v, -1) for v in columns["method"]], dtype=np.int16)
    return out


def from_wire(
    columns: dict[str, np.ndarray], ds: Dataset, labels: Labels, class_names: list[str], settings: BatchSettings
) -> dict[str, np.ndarray]:
    """``to_wire``'s columns with the strings back: the same columns ``shard_columns`` gives."""
    out = {k: np.asarray(v) for k, v in columns.items() if k != "method_code"}
    index = out["index"].astype(np.int64)
    names = np.asarray([*class_names, ""], dtype=object)  # -1 (no prediction) reads ""
    methods = np.asarray([*settings.methods, ""], dtype=object)
    out["id"] = np.asarray([ds.ids[i] for i in index], dtype=object)
    out["label_name"] = np.asarray([labels.names[i] for i in index], dtype=object)
    out["predicted_name"] = names[out["predicted"]]
    out["target_name"] = names[out["target"]]
    out["method"] = methods[np.asarray(columns["method_code"], dtype=np.int64)]
    out["error"] = np.asarray(out["error"], dtype=object)
    return out


def empty_columns(settings: BatchSettings, area: int) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for name in (*_INT_COLUMNS, *_FLOAT_COLUMNS, *STRING_COLUMNS):
        cols[name] = np.zeros(0, dtype=object if name in STRING_COLUMNS else _DTYPES.get(name, np.int64))
    for metric in settings.metrics:
        cols[METRIC_COLUMNS[metric]] = np.zeros(0, np.float64)
    cols["heatmap"] = np.zeros((0, area), np.float32)
    return cols


_INT_COLUMNS = ("index", "label", "predicted", "target", "correct")
_FLOAT_COLUMNS = ("probability", "target_probability", "score")
_DTYPES = {"correct": np.int8, "probability": np.float32, "target_probability": np.float32, "score": np.float32}
_FILL = {"predicted": -1, "target": -1, "correct": -1}


def normalise(parts: list[dict[str, Any]], settings: BatchSettings, area: int) -> dict[str, np.ndarray]:
    """One dict of same-length columns with fixed dtypes from row parts that may lack columns."""
    template = empty_columns(settings, area)
    if not parts:
        return template
    out = {}
    for name, empty in template.items():
        pieces = []
        for p in parts:
            n = len(p["index"])
            if name in p:
                pieces.append(np.asarray(p[name]).astype(empty.dtype, copy=False))
            elif name in STRING_COLUMNS:
                pieces.append(np.full(n, "", dtype=object))
            elif empty.dtype.kind == "f":
                pieces.append(np.full(n, np.nan, dtype=empty.dtype))
            else:
                pieces.append(np.full(n, _FILL.get(name, -1), dtype=empty.dtype))
        out[name] = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    return out


# ---- writing ------------------------------------------------------------------------------------
def arrow_table(
    columns: dict[str, np.ndarray], height: int, width: int, settings: BatchSettings, heatmap_file: str = ""
) -> tuple[Any, np.ndarray]:
    """The columns as a pyarrow table, rows sorted by picture then method (the engines' order may differ),
    and the heatmaps in the same order: float32 (rows, height, width), for ``heatmap_file``."""
    import pyarrow as pa

    ranks = np.full(len(columns["index"]), -1, dtype=np.int64)
    for rank, method in enumerate(settings.methods):
        ranks[columns["method"] == method] = rank
    order = np.lexsort((ranks, columns["index"]))
    in_order = bool(np.all(order == np.arange(len(order))))  # one method's rows, as the local engine gives them
    c = columns if in_order else {k: v[order] for k, v in columns.items()}
    n = len(order)
    error = c["error"].astype(str)
    failed = error != ""
    heat = np.asarray(c["heatmap"], dtype=np.float32).reshape(n, height, width)

    def nullable(name: str, values: np.ndarray, typ, null: np.ndarray) -> pa.Array:
        return pa.array(values, typ, mask=null)

    correct = c["correct"]
    fields = {
        "index": pa.array(c["index"], pa.int64()),
        "id": pa.array(c["id"].astype(str), pa.string()),
        "label": nullable("label", c["label"], pa.int64(), c["label"] < 0),
        "label_name": pa.array(c["label_name"].astype(str), pa.string()),
        "predicted": nullable("predicted", c["predicted"], pa.int64(), failed),
        "predicted_name": nullable("predicted_name", c["predicted_name"].astype(str), pa.string(), failed),
        "probability": nullable("probability", c["probability"], pa.float32(), failed),
        "correct": pa.array(correct == 1, pa.bool_(), mask=correct < 0),
        "method": nullable("method", c["method"].astype(str), pa.string(), failed),
        "target": nullable("target", c["target"], pa.int64(), failed),
        "target_name": nullable("target_name", c["target_name"].astype(str), pa.string(), failed),
        "target_probability": nullable("target_probability", c["target_probability"], pa.float32(), failed),
        "score": nullable("score", c["score"], pa.float32(), failed),
        **{METRIC_COLUMNS[k]: nullable(k, c[METRIC_COLUMNS[k]], pa.float64(), failed) for k in settings.metrics},
        "heatmap_file": nullable("heatmap_file", np.full(n, heatmap_file), pa.string(), failed),
        "heatmap_row": nullable("heatmap_row", np.arange(n, dtype=np.int32), pa.int32(), failed),
        "heatmap_height": pa.array(np.where(failed, 0, height), pa.int32()),
        "heatmap_width": pa.array(np.where(failed, 0, width), pa.int32()),
        "error": nullable("error", error, pa.string(), ~failed),
    }
    return pa.table(fields), heat


def write_atomically(table, path: Path, metadata: dict[str, str] | None = None) -> None:
    import pyarrow.parquet as pq

    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression=COMPRESSION, use_dictionary=list(DICTIONARY_COLUMNS))
    os.replace(tmp, path)


def save_atomically(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def read_heatmaps(out: str | Path, rows: Any) -> np.ndarray:
    """The heatmaps of some rows of ``results.parquet`` (a pandas frame, a pyarrow table or a dict of
    columns with ``heatmap_file`` and ``heatmap_row``): float32 (n, height, width), memory-mapped files
    read only where needed. A row without a heatmap (a picture that could not be read) is all NaN."""
    if hasattr(rows, "to_pydict"):
        rows = rows.select(["heatmap_file", "heatmap_row"]).to_pydict()
    files, where = list(rows["heatmap_file"]), list(rows["heatmap_row"])
    maps: dict[str, np.ndarray] = {}
    shape = None
    for f in dict.fromkeys(f for f in files if isinstance(f, str) and f):
        maps[f] = np.load(Path(out) / f, mmap_mode="r")
        shape = shape or maps[f].shape[1:]
    out_maps = np.full((len(files), *(shape or (0, 0))), np.nan, np.float32)
    for k, (f, r) in enumerate(zip(files, where, strict=True)):
        if isinstance(f, str) and f and r is not None and r == r:  # r == r: not NaN (pandas' missing value)
            out_maps[k] = maps[f][int(r)]
    return out_maps


def shard_is_done(path: Path, shard: Shard) -> bool:
    import pyarrow.parquet as pq

    heatmaps = path.parent.parent / shard.heatmap_file
    if not path.exists() or not heatmaps.exists():
        return False
    try:
        meta = pq.read_metadata(path)
        rows = np.load(heatmaps, mmap_mode="r").shape[0]
    except Exception:  # a damaged file is recomputed
        return False
    return (meta.metadata or {}).get(b"cnn_lens_ids") == shard.digest.encode() and rows == meta.num_rows


# ---- progress -----------------------------------------------------------------------------------
class ProgressBar:
    """``[#####.....] 512/2,000 pictures, 85.3 pictures/s, 17 s left`` on stderr."""

    def __init__(self, total: int, done: int = 0, stream=None, enabled: bool = True) -> None:
        self.total, self.done, self.start_done = total, done, done
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.started = time.perf_counter()
        self.last = 0.0
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    @property
    def rate(self) -> float:
        seconds = time.perf_counter() - self.started
        return (self.done - self.start_done) / seconds if seconds > 0 else 0.0

    def line(self) -> str:
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        rate = self.rate
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = f", {left:.0f} s left" if np.isfinite(left) and self.done < self.total else ""
        return f"[{'#' * filled}{'.' * (width - filled)}] {self.done:,}/{self.total:,} pictures, {rate:.1f} pictures/s{eta}"

    def update(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if not self.enabled or (now - self.last < (0.2 if self.tty else 5.0) and self.done < self.total):
            return
        self.last = now
        self.stream.write(("\r" if self.tty else "") + self.line() + ("" if self.tty else "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()


# ---- engines ------------------------------------------------------------------------------------
@dataclass
class Work:
    """What an engine gets: the shards to compute and how to call back as rows arrive."""

    job: BatchJob
    model: ModelHandle
    dataset: Dataset
    labels: Labels
    shards: list[Shard]
    batch_size: int
    on_rows: Callable[[dict[str, np.ndarray]], None]  # rows of any pictures of the shards


def batches_of(shards: list[Shard], batch_size: int) -> Iterator[np.ndarray]:
    """Picture indices of the shards, in batches that never straddle a shard."""
    for s in shards:
        for start in range(s.start, s.stop, batch_size):
            yield np.arange(start, min(start + batch_size, s.stop), dtype=np.int64)


_BACKGROUND: dict[tuple[int, str], ThreadPoolExecutor] = {}
_BACKGROUND_LOCK = threading.Lock()


def background(name: str) -> ThreadPoolExecutor:
    """A one-thread executor kept for the process (per name): the reader and the shard writer of every run.

    Kept rather than started per run: a fresh thread's first shard write took about 16 ms instead of 5
    on the 2-core machine (its allocator's new heap: page faults), more with the model running beside
    it. Runs that share it queue their tasks; the pid in the key gives a forked child its own (the
    parent's threads do not exist there).
    """
    key = (os.getpid(), name)
    with _BACKGROUND_LOCK:
        if key not in _BACKGROUND:
            _BACKGROUND[key] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        return _BACKGROUND[key]


def local_engine(work: Work) -> None:
    """The batches in order, the model called on one at a time in this thread, while a reader thread reads the
    next ``READ_AHEAD`` batches from the dataset and prepares them for the model (TensorFlow releases the GIL
    while it runs) and ``on_rows`` hands each finished shard to the writer thread."""
    m, ds, settings = work.model, work.dataset, work.job.settings
    todo = batches_of(work.shards, work.batch_size)
    reader = background("cnn-lens-read")
    ahead = deque(reader.submit(read_batch, m, ds, indices) for indices in itertools.islice(todo, READ_AHEAD))
    try:
        while ahead:
            batch = ahead.popleft().result()
            following = next(todo, None)
            if following is not None:
                ahead.append(reader.submit(read_batch, m, ds, following))
            work.on_rows(batch_columns(m, ds, work.labels, batch, settings))
    finally:
        for pending in ahead:  # after an error: no more reading
            pending.cancel()
        wait(ahead)


@dataclass
class RunInfo:
    engine: str
    seconds: float
    pictures: int
    resumed_shards: int
    computed_shards: int
    extra: dict[str, Any] = field(default_factory=dict)


def choose_batch_size(m: ModelHandle, settings: BatchSettings, most: int | None = None) -> int:
    """Pictures per batch: for a one-pass batched method (Grad-CAM, saliency), of a few sizes (up to ``most``,
    the shard size: batches never straddle a shard) timed on zero pictures, the largest within 10% of the
    fastest per picture (larger than the forward pass's best: the backward pass amortises over more
    pictures, and so does the engine's work around each call, which this timing does not see: about 1 ms
    a batch on a 2-core CPU, 10% of a 128-picture Grad-CAM batch of the 28x28 model); for methods that
    batch their own copies, the handle's best batch size."""
    from interpret.batch import batched_methods, explain_batch
    from interpret.batching import batch_candidates

    if settings.methods[0] not in batched_methods() or settings.params.get(settings.methods[0]):
        return best_batch_size(m)
    h, w, c = m.input_shape
    cap = max(1, MAX_BATCH_BYTES // (h * w * c * 4))  # float32 inputs of one batch
    cap = min(cap, most) if most else cap

    def measure() -> int:
        probe = np.zeros((1, *m.input_shape), np.uint8)
        calls, seconds = {}, {}
        for size in sorted({min(cap, f * b) for b in batch_candidates() for f in (4, 8, 16)}):
            pixels = np.repeat(probe, size, axis=0)
            start = time.perf_counter()
            explain_batch(m, pixels, settings.methods[0], layer=settings.layer)  # builds the kernels for this size
            # about 0.04 s a round (at most 1,024 pictures): one call of a small batch is too short to time
            calls[size] = int(np.clip(0.04 / max(time.perf_counter() - start, 1e-6), 1, max(1, 1024 // size)))
            seconds[size] = []
        for _ in range(4):  # rounds over all the sizes, the fastest of each counts: a neighbour's burst on a
            for size in seconds:  # shared machine slows one round of every size, not every round of one
                pixels = np.repeat(probe, size, axis=0)
                start = time.perf_counter()
                for _ in range(calls[size]):
                    explain_batch(m, pixels, settings.methods[0], layer=settings.layer)
                seconds[size].append((time.perf_counter() - start) / calls[size])
        rates = {size: size / max(min(times), 1e-9) for size, times in seconds.items()}
        best = max(rates.values())
        return max(size for size, rate in rates.items() if rate >= 0.9 * best)

    return m.cached(("batch_job_size", settings.methods[0], settings.layer, cap), measure)


def run_batch(
    job: BatchJob,
    engine: str = "local",
    address: str | None = None,
    actors: int | None = None,
    progress: bool = True,
    stream=None,
    handle: ModelHandle | None = None,
) -> dict[str, Any]:
    """Run (or resume) a batch job; returns the summary written to ``out/summary.json``.

    ``handle``: the job's model already loaded here (its compiled functions are reused); the
    Ray engine's actors still load ``job.model`` themselves.
    """
    settings = job.settings.check()
    if engine not in ("local", "ray"):
        raise ValueError(f"engine={engine!r}: choose local or ray.")
    ds = load_dataset(job.data, limit=job.limit)
    m = handle if handle is not None else load_model(job)
    labels = Labels.of(ds, m)
    if settings.target == "label" and np.any(labels.model_index < 0):
        raise ValueError(
            "--target label needs labels that are the model's classes; "
            f"the dataset's classes ({', '.join(ds.class_names[:5]) or 'none'}) do not match them."
        )
    out = Path(job.out)
    shard_dir = out / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest_of(job, ds)
    manifest_path = out / "manifest.json"
    if job.restart:
        for old in [*shard_dir.glob("shard-*.parquet"), *(out / HEATMAP_DIR).glob("shard-*.npy")]:
            old.unlink()
    elif manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        if previous != json.loads(json.dumps(manifest)):
            raise ValueError(
                f"{out} holds results of another model, dataset or settings ({manifest_path}); "
                "use another --out folder, or --restart to replace them."
            )
    manifest_path.write_text(json.dumps(manifest, indent=2))

    shards = plan_shards(ds, job.shard_size)
    todo = [s for s in shards if not shard_is_done(shard_dir / s.name, s)]
    done_pictures = sum(s.stop - s.start for s in shards if s not in todo)
    bar = ProgressBar(len(ds), done_pictures, stream=stream, enabled=progress)
    h, w, _ = m.input_shape
    pending: dict[Shard, list[dict[str, np.ndarray]]] = {s: [] for s in todo}
    seen: dict[Shard, set[int]] = {s: set() for s in todo}
    by_start = sorted(todo, key=lambda s: s.start)
    starts = np.asarray([s.start for s in by_start], dtype=np.int64)

    def write_shard(parts: list[dict[str, np.ndarray]], shard: Shard) -> None:
        table, heatmaps = arrow_table(normalise(parts, settings, h * w), h, w, settings, shard.heatmap_file)
        save_atomically(heatmaps, out / shard.heatmap_file)  # first: the Parquet file marks the shard done
        write_atomically(table, shard_dir / shard.name, {"cnn_lens_ids": shard.digest})

    writer = background("cnn-lens-shards")
    writes: list[Future] = []

    def on_rows(columns: dict[str, np.ndarray]) -> None:
        if not len(columns["index"]):
            return
        where = np.searchsorted(starts, columns["index"], side="right") - 1
        groups = np.unique(where)
        for k in groups:
            shard = by_start[int(k)]
            part = columns if len(groups) == 1 else {name: v[where == k] for name, v in columns.items()}
            pending[shard].append(part)
            new = set(part["index"].tolist()) - seen[shard]
            seen[shard] |= new
            bar.update(len(new))
            if len(seen[shard]) == shard.stop - shard.start:
                # written by a thread while the engine computes the next batches (TensorFlow and Parquet
                # both release the GIL); on 2 cores the writing still slows the model's calls a little
                writes.append(writer.submit(write_shard, pending.pop(shard), shard))

    batch_size = int(job.batch_size or choose_batch_size(m, settings, job.shard_size))
    work = Work(job, m, ds, labels, todo, batch_size, on_rows)
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    try:
        if todo:
            if engine == "local":
                local_engine(work)
            else:
                from serving.batch_ray import ray_engine

                extra = ray_engine(work, address=address, actors=actors) or {}
        for done in writes:
            done.result()  # a failed write raises here
    finally:
        wait(writes)  # no shard left half-written behind an error
    bar.close()
    missing = [s.name for s in todo if s in pending]
    if missing:
        raise RuntimeError(f"The engine finished without the rows of {len(missing)} shards: {', '.join(missing[:3])}")
    info = RunInfo(engine, time.perf_counter() - started, len(ds) - done_pictures, len(shards) - len(todo), len(todo))
    info.extra = {"batch_size": batch_size, **extra}
    merge(out / "results.parquet", [shard_dir / s.name for s in shards])
    summary = summarise(out / "results.parquet", job, ds, m, labels, info)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False, default=_json_default))
    return summary


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def merge(path: Path, shard_paths: list[Path]) -> None:
    """The shards, in order, into one parquet file; one shard in memory at a time."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = None
    try:
        for p in shard_paths:
            table = pq.read_table(p)
            table = table.replace_schema_metadata(None)
            if writer is None:
                writer = pq.ParquetWriter(
                    tmp, table.schema, compression=COMPRESSION, use_dictionary=list(DICTIONARY_COLUMNS)
                )
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def summarise(path: Path, job: BatchJob, ds: Dataset, m: ModelHandle, labels: Labels, info: RunInfo) -> dict[str, Any]:
    """Accuracy, per-class accuracy, most confused pairs, per-method metric means, bad pictures, timing."""
    import pyarrow.parquet as pq

    settings = job.settings
    metric_names = [METRIC_COLUMNS[k] for k in settings.metrics]
    cols = ["index", "id", "label", "predicted", "method", "error", *metric_names]
    t = pq.read_table(path, columns=cols).to_pydict()
    first = settings.methods[0]
    rows = [i for i, meth in enumerate(t["method"]) if meth == first]
    errors = sorted({(t["index"][i], t["id"][i], t["error"][i]) for i, e in enumerate(t["error"]) if e})
    y = np.asarray([t["label"][i] if t["label"][i] is not None else -1 for i in rows], dtype=np.int64)
    p = np.asarray([t["predicted"][i] for i in rows], dtype=np.int64)
    known = y >= 0
    summary: dict[str, Any] = {
        "model": m.name,
        "data": str(job.data),
        "pictures": len(ds),
        "explained": len(rows),
        "skipped": [{"index": int(i), "id": n, "error": e} for i, n, e in errors],
        "listing_problems": ds.listing_problems,
        "methods": settings.methods,
        "metrics": settings.metrics,
        "target": settings.target,
        "labels_matched": labels.matched,
        "accuracy": _finite(float(np.mean(y[known] == p[known]))) if known.any() else None,
        "labelled_pictures": int(known.sum()),
    }
    if known.any():
        per_class, pairs = {}, {}
        for c in np.unique(y[known]):
            sel = known & (y == c)
            per_class[m.class_names[c]] = float(np.mean(p[sel] == c))
        for a, b in zip(y[known], p[known], strict=True):
            if a != b:
                pairs[(int(a), int(b))] = pairs.get((int(a), int(b)), 0) + 1
        summary["per_class_accuracy"] = per_class
        summary["most_confused"] = [
            {"label": m.class_names[a], "predicted": m.class_names[b], "count": n}
            for (a, b), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        ]
    per_method: dict[str, Any] = {}
    columns_info = _metric_columns()
    for meth in settings.methods:
        sel = [i for i, v in enumerate(t["method"]) if v == meth]
        entry: dict[str, Any] = {"rows": len(sel)}
        for col in metric_names:
            vals = np.asarray([t[col][i] for i in sel if t[col][i] is not None], dtype=np.float64)
            entry[col] = {
                "mean": _finite(float(vals.mean())) if len(vals) else None,
                "std": _finite(float(vals.std(ddof=1))) if len(vals) > 1 else None,
                "n": int(len(vals)),
                **columns_info.get(col, {}),
            }
        per_method[meth] = entry
    summary["per_method"] = per_method
    summary["run"] = {
        "engine": info.engine,
        "seconds": round(info.seconds, 3),
        "pictures_this_run": info.pictures,
        "pictures_per_second": round(info.pictures / info.seconds, 2) if info.seconds > 0 and info.pictures else None,
        "shards_resumed": info.resumed_shards,
        "shards_computed": info.computed_shards,
        **info.extra,
    }
    return summary


def _metric_columns() -> dict[str, dict[str, Any]]:
    try:
        from interpret.metrics import COLUMNS
    except ImportError:
        return {}
    return {k: {"better": c.direction, "paper": c.paper} for k, c in COLUMNS.items()}
