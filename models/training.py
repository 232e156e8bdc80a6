"""Train a CNN the way the course does, and get back a model handle like any other.

>>> from models.training import TrainConfig, train
>>> r = train(TrainConfig(data="fashion-mnist", blocks=2, filters=32, dropout=0.25, epochs=3, seed=0))
>>> r.model          # a ModelHandle: explain it, look at its filters and activations
>>> r.history        # {"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...]}
>>> r.test_accuracy  # on the held-out test set (all 10,000 Fashion-MNIST test pictures)

Two kinds of model:

- **Build**: ``blocks`` conv blocks (``convs_per_block`` x Conv 3x3 - optional BatchNorm - ReLU, then
  2x2 max pooling and dropout), ``filters`` in the first block and twice as many in each next one,
  and a head: global average pooling (CAM applies) or Flatten, then one softmax Dense layer.
- **Transfer**: a ``keras.applications`` base (``TRANSFER_BASES``) frozen, with a new
  pooling-dropout-softmax head; optionally its top ``fine_tune_layers`` layers are then trained
  for ``fine_tune_epochs`` more epochs at ``learning_rate / fine_tune_factor``. The base is called
  with ``training=False``, so its BatchNorm layers stay in inference mode while fine-tuning.

Every trained model takes pixels / 255 (the ``"0..1"`` preset, like the bundled model); a transfer
model rescales to its base's own range with a ``Rescaling`` layer, so a downloaded ``.keras`` file
opens with the default input scaling.

Augmentation uses Keras preprocessing layers (``AUGMENTATIONS``) in front of the network during
training only; the returned model has no random layers. ``augmentation_preview`` draws the same
layers, with the same seed, on one picture.

The data is split with the seed: Fashion-MNIST keeps its own 10,000 test pictures and holds out
``val_fraction`` of the training set for validation; a folder or zip of class folders is split
into train / validation / test per class. Early stopping watches the validation loss.

``train(config, progress, cancel)`` reports ``TrainEvent``s (per batch, per epoch) to ``progress``
and stops at the next batch once ``cancel`` is set (the model so far is evaluated and returned,
``stopped=True``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelLoadError

FASHION_MNIST = "fashion-mnist"
MODEL_KINDS = ("build", "transfer")
HEADS = ("gap", "flatten")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "exponential")

# name -> (Keras layer, default strength, what the strength means)
AUGMENTATIONS: dict[str, tuple[str, float, str]] = {
    "flip": ("RandomFlip", 0.0, "horizontal mirror (no strength)"),
    "rotate": ("RandomRotation", 0.03, "fraction of a full turn, either way (0.03 = ±11°)"),
    "zoom": ("RandomZoom", 0.1, "fraction of the height, in or out"),
    "translate": ("RandomTranslation", 0.1, "fraction of the height and width, either way"),
    "contrast": ("RandomContrast", 0.2, "contrast factor range 1 ± strength"),
    "brightness": ("RandomBrightness", 0.2, "fraction of the value range added or removed"),
}


@dataclass(frozen=True)
class TransferBase:
    title: str
    builder: str  # attribute of keras.applications
    rescale: tuple[float, float]  # Rescaling(scale, offset) from 0..1 pixels to the base's input range
    min_size: int
    last_conv: str  # the base's last conv layer (Grad-CAM's default layer in the trained model)


TRANSFER_BASES: dict[str, TransferBase] = {
    "mobilenet_v2": TransferBase("MobileNetV2", "MobileNetV2", (2.0, -1.0), 32, "Conv_1"),
    "efficientnet_b0": TransferBase("EfficientNetB0", "EfficientNetB0", (255.0, 0.0), 32, "top_conv"),
}


class TrainingError(ModelLoadError):
    """A training choice or the data cannot work; the message says what to change."""


@dataclass
class TrainConfig:
    """Everything a training run needs; the page, ``cnn-lens train`` and ``python -m models.train`` share it."""

    data: str = FASHION_MNIST  # "fashion-mnist", or a folder / .zip with one sub-folder per class
    model: str = "build"  # "build" | "transfer"
    # Build
    blocks: int = 2
    filters: int = 32  # in the first block; each further block doubles it
    convs_per_block: int = 1
    batch_norm: bool = True
    dropout: float = 0.25
    head: str = "flatten"  # "flatten" | "gap" (global average pooling: CAM applies)
    # Transfer
    base: str = "mobilenet_v2"
    base_weights: str | None = "imagenet"  # None: random weights, a labelled demo that needs no download
    fine_tune_layers: int = 0  # after the frozen phase, train the base's top N layers...
    fine_tune_epochs: int = 0  # ...for this many more epochs...
    fine_tune_factor: float = 10.0  # ...at learning_rate / fine_tune_factor
    image_size: int | None = None  # None: the data's own size (Build), 96 (Transfer)
    # Augmentation: name -> strength (see AUGMENTATIONS); empty for none
    augment: dict[str, float] = field(default_factory=dict)
    # Optimiser and schedule
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    epochs: int = 3
    batch_size: int = 64
    early_stopping: bool = True
    patience: int = 3
    seed: int = 0
    # Data split and size
    val_fraction: float = 0.1
    test_fraction: float = 0.2  # folders and zips only; Fashion-MNIST has its own test set
    max_train: int | None = None  # use at most this many training pictures (quick runs)
    max_test: int | None = None  # evaluate on at most this many test pictures

    def __post_init__(self) -> None:
        self.augment = {str(k): float(v) for k, v in dict(self.augment or {}).items()}

    def check(self) -> None:
        """Raise ``TrainingError`` with a sentence a person can act on for any impossible choice."""
        problems = []
        if self.model not in MODEL_KINDS:
            problems.append(f"model must be one of {MODEL_KINDS}, not {self.model!r}")
        if self.model == "build":
            if not 1 <= self.blocks <= 6:
                problems.append("blocks must be from 1 to 6")
            if not 1 <= self.filters <= 512:
                problems.append("filters must be from 1 to 512")
            if not 1 <= self.convs_per_block <= 4:
                problems.append("convs_per_block must be from 1 to 4")
            if self.head not in HEADS:
                problems.append(f"head must be one of {HEADS}")
        if self.model == "transfer" and self.base not in TRANSFER_BASES:
            problems.append(f"base must be one of {', '.join(TRANSFER_BASES)}")
        if self.base_weights not in (None, "imagenet"):
            problems.append("base_weights must be 'imagenet' or None (random weights)")
        if not 0.0 <= self.dropout < 1.0:
            problems.append("dropout must be from 0 to below 1")
        unknown = sorted(set(self.augment) - set(AUGMENTATIONS))
        if unknown:
            problems.append(f"unknown augmentation {', '.join(unknown)} (choose from {', '.join(AUGMENTATIONS)})")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {SCHEDULES}")
        if not 0 < self.learning_rate <= 1:
            problems.append("learning_rate must be above 0 and at most 1")
        if not 1 <= self.epochs <= 1000:
            problems.append("epochs must be from 1 to 1000")
        if not 1 <= self.batch_size <= 4096:
            problems.append("batch_size must be from 1 to 4096")
        if self.fine_tune_epochs < 0 or self.fine_tune_layers < 0 or self.fine_tune_factor <= 0:
            problems.append("fine-tuning needs layers >= 0, epochs >= 0 and a factor above 0")
        if not 0 < self.val_fraction < 0.5 or not 0 < self.test_fraction < 0.5:
            problems.append("val_fraction and test_fraction must be between 0 and 0.5")
        if self.image_size is not None and not 8 <= self.image_size <= 512:
            problems.append("image_size must be from 8 to 512 pixels")
        if self.model == "transfer" and self.image_size is not None:
            low = TRANSFER_BASES.get(self.base, TRANSFER_BASES["mobilenet_v2"]).min_size
            if self.image_size < low:
                problems.append(f"{self.base} needs pictures of at least {low}x{low} pixels")
        if self.max_train is not None and self.max_train < 2:
            problems.append("max_train must be at least 2")
        if problems:
            raise TrainingError("Cannot train: " + "; ".join(problems) + ".")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TrainingError(f"Unknown training option(s): {', '.join(unknown)}.")
        return cls(**data)

    @property
    def total_epochs(self) -> int:
        return self.epochs + (self.fine_tune_epochs if self.model == "transfer" and self.fine_tune_layers else 0)


@dataclass
class TrainEvent:
    """One progress report: ``kind`` is "start", "batch", "epoch", "phase", "evaluate" or "done"."""

    kind: str
    phase: str = "train"  # "train" | "fine-tune"
    epoch: int = 0  # 0-based, counted across both phases
    epochs: int = 0
    batch: int = 0  # batches done in this epoch
    batches: int = 0
    loss: float | None = None  # running means over this epoch's batches so far
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    elapsed_s: float = 0.0
    epoch_s: float | None = None  # seconds the last finished epoch took
    eta_s: float | None = None
    message: str = ""

    @property
    def position(self) -> float:
        """Epochs done, fractional within the epoch (the curves' x axis)."""
        return self.epoch + (self.batch / self.batches if self.batches else 0.0)


Progress = Callable[[TrainEvent], None]


@dataclass
class TrainData:
    """Pictures as uint8 (N, H, W, C) and integer labels, split three ways."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.x_train.shape[1:])  # type: ignore[return-value]


@dataclass
class TrainResult:
    """What a training run gives back; ``model`` is a ``ModelHandle`` like any other."""

    model: Any  # models.handle.ModelHandle
    history: dict[str, list[float]]
    test_accuracy: float
    per_class_accuracy: list[float]
    confusion: np.ndarray  # (K, K): rows true class, columns predicted class
    class_names: list[str]
    test_count: int
    misclassified: np.ndarray  # indices into the test set, most confident mistakes first
    test_predictions: np.ndarray  # (N,) predicted class of each test picture
    test_confidence: np.ndarray  # (N,) probability of the predicted class
    epochs_run: int
    epoch_seconds: list[float]
    seconds: float
    stopped: bool = False
    stop_reason: str = ""  # "" | "stopped" | "early stopping" | "time limit"
    parameters: int = 0
    config: TrainConfig | None = None
    data_source: str = ""
    test_images: np.ndarray | None = field(default=None, repr=False)  # the test pictures, uint8
    test_labels: np.ndarray | None = field(default=None, repr=False)

    def misclassified_examples(self, n: int = 16) -> list[tuple[int, int, int, float]]:
        """(test index, true class, predicted class, confidence) of up to ``n`` mistakes."""
        labels = self.test_labels if self.test_labels is not None else np.zeros(0, int)
        return [
            (int(i), int(labels[i]), int(self.test_predictions[i]), float(self.test_confidence[i]))
            for i in self.misclassified[:n]
        ]


# ---- data ------------------------------------------------------------------------------------


def _subsample(x: np.ndarray, y: np.ndarray, n: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` pictures, the same share of each class (seeded)."""
    if n is None or n >= len(y):
        return x, y
    classes, counts = np.unique(y, return_counts=True)
    share = counts / counts.sum()
    take = np.maximum(1, np.floor(share * n).astype(int))
    keep = []
    for c, k in zip(classes, take, strict=True):
        idx = np.flatnonzero(y == c)
        keep.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    order = rng.permutation(np.concatenate(keep))
    return x[order], y[order]


def _split_per_class(y: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> list[np.ndarray]:
    """Indices for each fraction (the rest goes to the first part), class by class, shuffled with ``rng``."""
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        start = 0
        sizes = [int(round(f * len(idx))) for f in fractions]
        if len(idx) >= len(fractions) + 1:  # every part gets at least one picture of the class
            sizes = [max(1, s) for s in sizes]
        for j, size in enumerate(sizes, start=1):
            parts[j].append(idx[start : start + size])
            start += size
        parts[0].append(idx[start:])
    return [rng.permutation(np.concatenate(p)) if p else np.zeros(0, int) for p in parts]


def load_fashion_mnist_split(config: TrainConfig) -> TrainData:
    from models.bundled import CLASS_FILE
    from models.class_names import read_asset_names
    from models.fashion_mnist_data import DEBIAN_DIR, load_fashion_mnist

    try:
        (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    except Exception as exc:  # offline keras.datasets download, missing Debian files
        raise TrainingError(
            f"Fashion-MNIST could not be read ({exc}). Install Debian's dataset-fashion-mnist package "
            f"(it puts the files in {DEBIAN_DIR}) or allow keras.datasets to download it once."
        ) from exc
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(y_train))
    n_val = int(round(config.val_fraction * len(order)))
    val, fit = order[:n_val], order[n_val:]
    xt, yt = _subsample(x_train[fit], y_train[fit], config.max_train, rng)
    n_val_keep = None if config.max_train is None else max(10, int(config.max_train * config.val_fraction))
    xv, yv = _subsample(x_train[val], y_train[val], n_val_keep, rng)
    xs, ys = _subsample(x_test, y_test, config.max_test, np.random.default_rng(config.seed + 1))
    source = f"Fashion-MNIST ({DEBIAN_DIR})" if DEBIAN_DIR.exists() else "Fashion-MNIST (keras.datasets)"
    return TrainData(
        xt[..., None],
        yt.astype(np.int64),
        xv[..., None],
        yv.astype(np.int64),
        xs[..., None],
        ys.astype(np.int64),
        read_asset_names(CLASS_FILE),
        source,
    )


def load_folder_split(config: TrainConfig, size: int) -> TrainData:
    """A folder or zip with one sub-folder per class, read by ``models.datasets`` and split per class (seeded).

    Pictures are scaled to ``size`` x ``size`` as they are decoded; they are trained in grayscale
    when the first pictures of the dataset all are, else in RGB. Pictures that do not decode are
    skipped (``models.datasets`` reports them by name).
    """
    from models.datasets import load_dataset

    ds = load_dataset(config.data)
    names = list(ds.class_names)
    if not ds.labeled or len(names) < 2:
        raise TrainingError(
            f"{Path(config.data).name}: training needs pictures sorted into at least two class folders "
            f"(cat/1.jpg, dog/2.jpg, ...); found {len(names)} class folder(s)."
        )
    labels = np.asarray(ds.labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=len(names))
    if counts.min() < 3:
        thin = [names[i] for i in np.flatnonzero(counts < 3)]
        raise TrainingError(
            f"{Path(config.data).name}: every class needs at least 3 pictures (for training, validation and "
            f"test); too few in {', '.join(thin[:5])}."
        )
    channels = _dataset_channels(ds)
    shape = (size, size, channels)
    rng = np.random.default_rng(config.seed)
    fit, val, test = _split_per_class(labels, (config.val_fraction, config.test_fraction), rng)
    fit, _ = _subsample(fit, labels[fit], config.max_train, rng)
    test, _ = _subsample(test, labels[test], config.max_test, rng)

    def read(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kept, parts = [], []
        for got, pixels in ds.batches(256, shape, idx):
            kept.append(got)
            parts.append(pixels)
        got = np.concatenate(kept) if kept else np.zeros(0, np.int64)
        x = np.concatenate(parts) if parts else np.zeros((0, *shape), np.uint8)
        return x, labels[got]

    (xt, yt), (xv, yv), (xs, ys) = read(fit), read(val), read(test)
    skipped = len(ds.problems)
    source = f"{len(labels):,} pictures in {Path(config.data).name}" + (f" ({skipped} skipped)" if skipped else "")
    return TrainData(xt, yt, xv, yv, xs, ys, names, source)


def _dataset_channels(ds: Any, probe: int = 16) -> int:
    """1 when the first pictures of the dataset are all grayscale, else 3."""
    seen = 0
    for i in range(min(len(ds), probe * 4)):
        try:
            picture = ds[i]
        except ValueError:
            continue
        if picture.ndim == 3 and picture.shape[-1] >= 3:
            return 3
        seen += 1
        if seen >= probe:
            break
    return 1 if seen else 3


def load_training_data(config: TrainConfig) -> TrainData:
    if config.data == FASHION_MNIST:
        data = load_fashion_mnist_split(config)
    else:
        default = DEFAULT_TRANSFER_SIZE if config.model == "transfer" else DEFAULT_FOLDER_SIZE
        data = load_folder_split(config, config.image_size or default)
    if len(data.y_train) < 2 or len(data.y_val) < 1 or len(data.y_test) < 1:
        raise TrainingError("Cannot train: too few pictures after the train / validation / test split.")
    return data


DEFAULT_FOLDER_SIZE = 64
DEFAULT_TRANSFER_SIZE = 96


def model_input_shape(config: TrainConfig, data_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The trained model's input (H, W, C): the data's own, or a square ``image_size``; RGB for transfer."""
    h, w, c = data_shape
    if config.model == "transfer":
        s = config.image_size or DEFAULT_TRANSFER_SIZE
        return s, s, 3
    if config.image_size:
        return config.image_size, config.image_size, c
    return h, w, c


# ---- models ----------------------------------------------------------------------------------


def build_cnn(config: TrainConfig, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    """The course's CNN: conv blocks (Conv-BN-ReLU x n, pooling, dropout), then a GAP or Flatten head."""
    import keras

    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    side = min(input_shape[:2])
    for b in range(config.blocks):
        f = int(config.filters * 2**b)
        for i in range(config.convs_per_block):
            name = f"block{b + 1}_conv{i + 1}"
            x = layers.Conv2D(f, 3, padding="same", use_bias=not config.batch_norm, name=name)(x)
            if config.batch_norm:
                x = layers.BatchNormalization(momentum=0.9, name=f"block{b + 1}_bn{i + 1}")(x)
            x = layers.ReLU(name=f"block{b + 1}_relu{i + 1}")(x)
        if side >= 2:
            x = layers.MaxPooling2D(name=f"block{b + 1}_pool")(x)
            side //= 2
        if config.dropout > 0:
            x = layers.Dropout(config.dropout, name=f"block{b + 1}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x) if config.head == "gap" else layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="trained_cnn")


def build_transfer(config: TrainConfig, input_shape: tuple[int, int, int], num_classes: int) -> tuple[Any, Any]:
    """(model, base): Rescaling -> frozen zoo base (nested, called in inference mode) -> GAP -> dropout -> softmax."""
    import keras

    entry = TRANSFER_BASES[config.base]
    builder = getattr(keras.applications, entry.builder)
    try:
        base = builder(include_top=False, weights=config.base_weights, input_shape=input_shape)
    except Exception as exc:  # keras.utils.get_file raises a plain Exception when offline
        if config.base_weights is None:
            raise
        raise TrainingError(imagenet_missing_message(config.base, exc)) from exc
    base.trainable = False
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    scale, offset = entry.rescale
    x = layers.Rescaling(scale, offset, name="to_base_range")(inputs)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if config.dropout > 0:
        x = layers.Dropout(config.dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{config.base}_transfer"), base


def imagenet_missing_message(base: str, exc: BaseException | None = None) -> str:
    from models.zoo import keras_cache_dir

    title = TRANSFER_BASES[base].title if base in TRANSFER_BASES else base
    detail = f" ({str(exc).splitlines()[0][:200]})" if exc is not None and str(exc).strip() else ""
    return (
        f"Transfer learning needs the ImageNet weights of {title}, and they could not be downloaded "
        f"(is this machine offline?){detail}. Put the weights file in {keras_cache_dir()}, or choose "
        "random weights to try transfer learning as a demo (it learns much less without pretrained weights)."
    )


def imagenet_weights_cached(base: str, size: int = DEFAULT_TRANSFER_SIZE) -> bool:
    """Whether the no-top ImageNet weights file of ``base`` is already in the Keras cache (no download)."""
    import glob
    import os

    from models.zoo import keras_cache_dir

    patterns = {
        "mobilenet_v2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_*_no_top.h5",
        "efficientnet_b0": "efficientnetb0_notop.h5",
    }
    pattern = patterns.get(base)
    return bool(pattern and glob.glob(os.path.join(keras_cache_dir(), pattern)))


def build_model(config: TrainConfig, input_shape: tuple[int, int, int], num_classes: int) -> tuple[Any, Any | None]:
    """(model, base or None) for the config; transfer bases with ``weights=None`` need no network."""
    config.check()
    if config.model == "transfer":
        return build_transfer(config, input_shape, num_classes)
    return build_cnn(config, input_shape, num_classes), None


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: str
    parameters: int
    trainable: bool


@dataclass
class Architecture:
    """What the page shows before training: the layers and the parameter counts."""

    layers: list[LayerRow]
    total_params: int
    trainable_params: int
    input_shape: tuple[int, int, int]


def describe_architecture(config: TrainConfig, input_shape: tuple[int, int, int], num_classes: int) -> Architecture:
    """Build the model (a transfer base with random weights: no download) and list its layers."""
    import keras

    probe = TrainConfig(**{**config.to_dict(), "base_weights": None}) if config.model == "transfer" else config
    model, _ = build_model(probe, input_shape, num_classes)
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            shape = str(tuple(layer.output.shape))
        except (AttributeError, ValueError):
            shape = "?"
        kind = type(layer).__name__
        if isinstance(layer, keras.Model):
            kind = f"{kind} ({len(layer.layers)} layers, frozen)" if not layer.trainable else kind
        rows.append(LayerRow(layer.name, kind, shape, int(layer.count_params()), bool(layer.trainable)))
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    return Architecture(rows, int(model.count_params()), trainable, tuple(input_shape))


# ---- augmentation ----------------------------------------------------------------------------


def augmentation_layers(augment: dict[str, float], seed: int = 0, value_range: tuple[float, float] = (0.0, 1.0)) -> Any:
    """A ``keras.Sequential`` of the chosen preprocessing layers (active with ``training=True`` only), or None."""
    import keras

    layers = keras.layers
    made = []
    for i, (name, strength) in enumerate(sorted(augment.items(), key=lambda kv: list(AUGMENTATIONS).index(kv[0]))):
        s = float(strength) if strength else AUGMENTATIONS[name][1]
        layer_seed = seed * 1000 + i
        if name == "flip":
            made.append(layers.RandomFlip("horizontal", seed=layer_seed, name="flip"))
        elif name == "rotate":
            made.append(layers.RandomRotation(s, fill_mode="constant", seed=layer_seed, name="rotate"))
        elif name == "zoom":
            made.append(layers.RandomZoom(s, fill_mode="constant", seed=layer_seed, name="zoom"))
        elif name == "translate":
            made.append(layers.RandomTranslation(s, s, fill_mode="constant", seed=layer_seed, name="translate"))
        elif name == "contrast":
            made.append(layers.RandomContrast(min(s, 0.99), value_range=value_range, seed=layer_seed, name="contrast"))
        elif name == "brightness":
            made.append(
                layers.RandomBrightness(min(s, 1.0), value_range=value_range, seed=layer_seed, name="brightness")
            )
    if not made:
        return None
    return keras.Sequential(made, name="augmentation")


def augment_batch(batch: np.ndarray, augment: dict[str, float], seed: int = 0) -> np.ndarray:
    """The augmentation layers' output (``training=True``) for a float batch in 0..1, clipped to 0..1."""
    aug = augmentation_layers(augment, seed)
    x = np.asarray(batch, np.float32)
    if aug is None:
        return x
    return np.clip(np.asarray(aug(x, training=True)), 0.0, 1.0)


def augmentation_preview(image: np.ndarray, augment: dict[str, float], n: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` augmented copies of one picture, uint8 (n, H, W, C): the layers' output for the same seed."""
    from models.preprocessing import as_batch, to_pixels

    pixels = to_pixels(as_batch(image)[:1]) / 255.0
    out = augment_batch(np.repeat(pixels, n, axis=0), augment, seed)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


# ---- training --------------------------------------------------------------------------------


def _optimizer(config: TrainConfig, learning_rate: float, steps: int) -> Any:
    import keras

    lr: Any = learning_rate
    if config.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, steps))
    elif config.schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(learning_rate, max(1, steps // max(1, config.epochs)), 0.7)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    return keras.optimizers.Adam(lr)


def _pipeline(x: np.ndarray, y: np.ndarray, shape: tuple[int, int, int], batch: int, shuffle_seed: int | None) -> Any:
    """uint8 pictures -> batches of the model's input (pixels / 255 at the model's size and channels)."""
    import tensorflow as tf

    h, w, c = shape
    same = x.shape[1:3] == (h, w)

    def prep(images: Any, labels: Any) -> tuple[Any, Any]:
        images = tf.cast(images, tf.float32) / 255.0
        if images.shape[-1] != c:
            images = tf.image.grayscale_to_rgb(images) if c == 3 else tf.image.rgb_to_grayscale(images)
        if not same:
            images = tf.image.resize(images, (h, w), antialias=True)
        return images, labels

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(min(len(y), 20_000), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch).map(prep, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class _Reporter:
    """Keras callback: ``TrainEvent``s per batch and epoch, cancellation and a time limit between batches."""

    def __init__(
        self,
        progress: Progress | None,
        cancel: threading.Event | None,
        deadline: float | None,
        epochs: int,
        batches: int,
        started: float,
    ) -> None:
        import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                outer.epoch_started = time.perf_counter()
                outer.epoch = epoch
                outer.done = 0
                outer.emit("batch", batch=0)

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                outer.batch_end(self.model, batch, logs or {})

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                outer.epoch_end(epoch, logs or {})

        self.callback = Callback()
        self.progress = progress
        self.cancel = cancel
        self.deadline = deadline
        self.epochs = epochs
        self.batches = batches
        self.started = started
        self.phase = "train"
        self.epoch = 0
        self.epoch_started = started
        self.epoch_seconds: list[float] = []
        self.stop_reason = ""
        self.done = 0  # batches done in the current epoch
        self.last: dict[str, float] = {}

    def eta(self, batch: int) -> float | None:
        done = self.epoch + batch / max(1, self.batches)
        elapsed = time.perf_counter() - self.started
        if self.epoch_seconds:
            per_epoch = float(np.mean(self.epoch_seconds))
            left = self.epochs - done
            return max(0.0, left * per_epoch)
        if batch:
            per_batch = (time.perf_counter() - self.epoch_started) / batch
            return max(0.0, (self.epochs - done) * self.batches * per_batch)
        return None if not done else elapsed / done * (self.epochs - done)

    def emit(self, kind: str, **values: Any) -> None:
        if self.progress is None:
            return
        event = TrainEvent(
            kind=kind,
            phase=self.phase,
            epoch=self.epoch,
            epochs=self.epochs,
            batches=self.batches,
            elapsed_s=time.perf_counter() - self.started,
            epoch_s=self.epoch_seconds[-1] if self.epoch_seconds else None,
            **values,
        )
        if event.eta_s is None and kind in ("batch", "epoch"):
            event.eta_s = self.eta(event.batch)
        self.progress(event)

    def check_stop(self, model: Any) -> None:
        if self.cancel is not None and self.cancel.is_set():
            self.stop_reason = self.stop_reason or "stopped"
            model.stop_training = True
        elif self.deadline is not None and time.perf_counter() > self.deadline:
            self.stop_reason = self.stop_reason or "time limit"
            model.stop_training = True

    def batch_end(self, model: Any, batch: int, logs: dict[str, Any]) -> None:
        self.done = batch + 1
        self.last = {k: float(v) for k, v in logs.items() if np.isscalar(v) or np.ndim(v) == 0}
        self.emit("batch", batch=batch + 1, loss=self.last.get("loss"), accuracy=self.last.get("accuracy"))
        self.check_stop(model)

    def epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.epoch_seconds.append(time.perf_counter() - self.epoch_started)
        vals = {k: float(v) for k, v in logs.items()}
        self.emit(
            "epoch",
            batch=self.done,  # fewer than ``batches`` when training was stopped part-way through the epoch
            loss=vals.get("loss"),
            accuracy=vals.get("accuracy"),
            val_loss=vals.get("val_loss"),
            val_accuracy=vals.get("val_accuracy"),
            eta_s=max(0.0, (self.epochs - epoch - 1) * float(np.mean(self.epoch_seconds))),
        )


def _fit(model: Any, train_ds: Any, val_ds: Any, first: int, last: int, callbacks: list[Any]) -> dict[str, list[float]]:
    if last <= first:
        return {}
    h = model.fit(
        train_ds,
        validation_data=val_ds,
        initial_epoch=first,
        epochs=last,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,
    )
    return {k: [float(v) for v in vs] for k, vs in h.history.items()}


def _training_model(model: Any, augment: dict[str, float], seed: int) -> Any:
    """``model`` with the augmentation layers in front (they are active in training only)."""
    import keras

    aug = augmentation_layers(augment, seed)
    if aug is None:
        return model
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    return keras.Model(inputs, model(aug(inputs)), name="training_model")


def calibrate_batch_norm(base: Any, x: np.ndarray) -> int:
    """Set every BatchNorm layer's moving statistics of a *random-weights* base from one batch ``x``.

    A randomly initialised base in inference mode normalises with mean 0 and variance 1 while its
    activations shrink layer after layer: MobileNetV2's pooled features come out near 1e-12, and a
    new head on the frozen base cannot learn anything. One forward pass in training mode with the
    momentum at 0 stores each layer's batch statistics instead (the base's weights are not
    trained). Returns the number of BatchNorm layers set.
    """
    import keras

    norms = [layer for layer in _all_layers(base) if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [(layer, layer.momentum, layer.trainable) for layer in norms]
    was = base.trainable
    base.trainable = True
    try:
        for layer in norms:
            layer.trainable = True
            layer.momentum = 0.0
        base(x, training=True)
    finally:
        for layer, momentum, trainable in saved:
            layer.momentum = momentum
            layer.trainable = trainable
        base.trainable = was
    return len(norms)


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


def unfreeze_top(base: Any, n: int) -> int:
    """Make the top ``n`` layers of ``base`` with weights trainable (BatchNorm stays frozen); returns how many."""
    import keras

    base.trainable = True
    with_weights = [layer for layer in base.layers if layer.weights]
    top = {id(layer) for layer in with_weights[-n:]} if n > 0 else set()
    count = 0
    for layer in base.layers:
        train_it = id(layer) in top and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = train_it
        count += int(train_it)
    return count


def train(
    config: TrainConfig,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    time_limit_s: float | None = None,
    data: TrainData | None = None,
) -> TrainResult:
    """Train the model ``config`` describes and evaluate it on the test set.

    ``progress(event)`` gets a ``TrainEvent`` after every batch and epoch; once ``cancel`` is set
    (or ``time_limit_s`` has passed) training stops after the current batch, and the model so far
    is evaluated and returned with ``stopped=True``. ``data`` overrides what ``config.data`` names
    (tests pass a few pictures).
    """
    import keras

    from models.handle import ModelHandle
    from models.preprocessing import PRESETS

    config.check()
    started = time.perf_counter()
    deadline = started + time_limit_s if time_limit_s else None
    keras.utils.set_random_seed(config.seed)
    if data is None:
        if progress is not None:
            progress(TrainEvent("start", epochs=config.total_epochs, message="Reading the pictures..."))
        data = load_training_data(config)
    names = list(data.class_names)
    shape = model_input_shape(config, data.image_shape)
    if progress is not None:
        progress(TrainEvent("start", epochs=config.total_epochs, message="Building the model..."))
    model, base = build_model(config, shape, len(names))
    batches = math.ceil(len(data.y_train) / config.batch_size)
    total = config.total_epochs
    reporter = _Reporter(progress, cancel, deadline, total, batches, started)
    callbacks: list[Any] = [reporter.callback]
    if config.early_stopping:
        stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
        callbacks.append(stopper)
    train_ds = _pipeline(data.x_train, data.y_train, shape, config.batch_size, config.seed)
    if base is not None and config.base_weights is None:  # random weights: usable features need BN statistics
        sample = next(iter(_pipeline(data.x_train[:256], data.y_train[:256], shape, 256, None)))[0]
        calibrate_batch_norm(base, model.get_layer("to_base_range")(sample))
    val_ds = _pipeline(data.x_val, data.y_val, shape, max(config.batch_size, 256), None)
    fit_model = _training_model(model, config.augment, config.seed)
    fit_model.compile(
        _optimizer(config, config.learning_rate, batches * config.epochs),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = _fit(fit_model, train_ds, val_ds, 0, config.epochs, callbacks)
    early = bool(config.early_stopping and callbacks[-1].stopped_epoch)
    tune = config.model == "transfer" and config.fine_tune_layers > 0 and config.fine_tune_epochs > 0
    if tune and base is not None and not reporter.stop_reason and not early:
        done = len(history.get("loss", []))
        reporter.phase = "fine-tune"
        unfrozen = unfreeze_top(base, config.fine_tune_layers)
        reporter.emit("phase", message=f"Fine-tuning the top {unfrozen} layers of the base")
        fit_model.compile(
            _optimizer(config, config.learning_rate / config.fine_tune_factor, batches * config.fine_tune_epochs),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        if config.early_stopping:
            callbacks[-1] = keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.patience, restore_best_weights=True
            )
        more = _fit(fit_model, train_ds, val_ds, done, done + config.fine_tune_epochs, callbacks)
        for k, vs in more.items():
            history.setdefault(k, []).extend(vs)
        early = early or bool(config.early_stopping and callbacks[-1].stopped_epoch)
    stop_reason = reporter.stop_reason or ("early stopping" if early else "")
    history["epoch_seconds"] = list(reporter.epoch_seconds)

    reporter.emit("evaluate", message=f"Testing on {len(data.y_test):,} pictures...")
    test_ds = _pipeline(data.x_test, data.y_test, shape, 512, None)
    probs = np.asarray(model.predict(test_ds, verbose=0))
    predicted = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    y = data.y_test
    k = len(names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y, predicted), 1)
    per_class = [float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else float("nan") for i in range(k)]
    wrong = np.flatnonzero(predicted != y)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    title = TRANSFER_BASES[config.base].title if config.model == "transfer" else "CNN"
    if config.model == "transfer" and config.base_weights is None:
        title += ", random-weights demo"
    name = f"Trained {title} ({len(history.get('loss', []))} epochs)"
    handle = ModelHandle(name, model, PRESETS["0..1"], names, source="trained")
    reporter.emit("done", message="Done")
    return TrainResult(
        model=handle,
        history=history,
        test_accuracy=float((predicted == y).mean()),
        per_class_accuracy=per_class,
        confusion=confusion,
        class_names=names,
        test_count=int(len(y)),
        misclassified=wrong.astype(np.int64),
        test_predictions=predicted.astype(np.int64),
        test_confidence=confidence.astype(np.float32),
        epochs_run=len(history.get("loss", [])),
        epoch_seconds=list(reporter.epoch_seconds),
        seconds=time.perf_counter() - started,
        stopped=bool(reporter.stop_reason),
        stop_reason=stop_reason,
        parameters=int(model.count_params()),
        config=config,
        data_source=data.source,
        test_images=data.x_test,
        test_labels=data.y_test,
    )
