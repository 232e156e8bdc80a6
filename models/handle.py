"""One handle per model: everything the explanation methods and the UI need to know.

The handle hides where a model came from (bundled, ImageNet zoo, user upload). It
owns the preprocessing, the class names, the conv layers (nested ones too) and a
*logits* view of the network: a final softmax or sigmoid is split off, because
gradients through a saturated softmax vanish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from models import graph
from models.errors import ModelLoadError
from models.preprocessing import Preprocessing, match_channels, resize_batch, to_pixels

SQUASHING = {"softmax": "softmax", "sigmoid": "sigmoid"}


def _activation_name(layer: keras.layers.Layer) -> str | None:
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None) if act is not None else None
    return SQUASHING.get(name) if name else None


def linear_twin(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A copy of ``layer`` with ``activation="linear"`` and the same weights."""
    config = {**layer.get_config(), "activation": "linear", "name": layer.name + "_logits"}
    twin = layer.__class__.from_config(config)
    twin.build(tuple(layer.input.shape))
    twin.set_weights(layer.get_weights())
    return twin


MAX_SIDE = 4096  # pixels: 16 MP a picture; a batch of them must still fit in memory
CHANNELS = {1: "grayscale", 3: "RGB"}


def _shapes(tensors: Any) -> list[tuple[Any, ...]]:
    return [tuple(t.shape) for t in tensors]


def explainable_input(model: keras.Model) -> tuple[int, int, int]:
    """(height, width, channels) of a model CNN Lens can feed pictures to; else ``ModelLoadError`` saying why.

    The rules: one input; 4-D, (batch, height, width, channels) with any batch size; a fixed
    height and width from 1 to ``MAX_SIDE`` pixels; 1 (grayscale) or 3 (RGB) channels.
    """
    try:
        inputs = list(model.inputs or [])
    except (AttributeError, ValueError) as exc:
        raise ModelLoadError(
            "The model has no defined input (it was never built). Build it with keras.Input(shape=(height, "
            "width, channels)) before saving it."
        ) from exc
    if len(inputs) != 1:
        raise ModelLoadError(
            f"Models with several inputs are not supported; CNN Lens explains one image input, and this model "
            f"has {len(inputs)}: {_shapes(inputs)}. Save a model that takes one picture."
            if inputs
            else "The model has no defined input. Build it with keras.Input(shape=(height, width, channels)) "
            "before saving it."
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4:
        raise ModelLoadError(
            f"CNN Lens explains image classifiers: the model's input must be a batch of pictures, 4-D "
            f"(batch, height, width, channels), but this model takes {shape}. A model for vectors, sequences "
            "or volumes cannot be explained here."
        )
    batch, height, width, channels = shape
    if batch is not None:
        raise ModelLoadError(
            f"The model's batch size is fixed to {batch}; CNN Lens runs many pictures at once. Save it built "
            f"with keras.Input(shape={(height, width, channels)}) (no batch_size)."
        )
    if height is None or width is None:
        raise ModelLoadError(
            f"The model's input must be (height, width, 1 or 3) with a fixed size; it is {shape[1:]}. Build it "
            "with the size it was trained on, e.g. keras.Input(shape=(224, 224, 3)), and save it again."
        )
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise ModelLoadError(
            f"The model's input is {height}x{width} pixels; CNN Lens explains inputs from 1x1 to "
            f"{MAX_SIDE}x{MAX_SIDE} pixels. Save the model with an input size in that range."
        )
    if channels not in CHANNELS:
        raise ModelLoadError(
            f"The model's input has {channels} channels; CNN Lens feeds it pictures with 1 channel (grayscale) "
            "or 3 channels (RGB), with transparency composited on white. Save a model that takes 1 or 3 channels."
        )
    return int(height), int(width), int(channels)


def explainable_classes(model: keras.Model) -> int:
    """The number of output units of a one-output (batch, classes) classifier; else ``ModelLoadError``."""
    outputs = list(model.outputs or [])
    if len(outputs) != 1:
        raise ModelLoadError(
            f"The model has {len(outputs)} outputs {_shapes(outputs)}; CNN Lens explains a classifier with one "
            "output of shape (batch, classes). Save the classification head alone, e.g. "
            "keras.Model(model.input, model.outputs[0])."
        )
    shape = tuple(outputs[0].shape)
    if len(shape) != 2 or shape[1] is None or shape[1] < 1:
        raise ModelLoadError(
            f"The model's output must be (batch, classes); it is {shape}. End the model with a "
            "GlobalAveragePooling2D or Flatten layer and a Dense layer with one unit per class."
        )
    return int(shape[1])


@dataclass
class OutputHead:
    """How logits become the probabilities shown to a person."""

    kind: str  # "softmax" | "sigmoid" (binary, shown as 2 classes) | "multilabel" | "linear"
    units: int


@dataclass(eq=False)
class ModelHandle:
    """A Keras classifier ready to be explained."""

    name: str
    model: keras.Model
    preprocessing: Preprocessing
    class_names: list[str]
    source: str = "bundled"  # "bundled" | "zoo" | "upload"
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self.input_shape: tuple[int, int, int] = explainable_input(self.model)
        units = explainable_classes(self.model)
        self._output_path = graph.output_layer_path(self.model)
        out_layer = graph.find_layer(self.model, self._output_path)
        squash = _activation_name(out_layer)
        if squash == "sigmoid":
            kind = "sigmoid" if units == 1 else "multilabel"
        elif squash == "softmax":
            kind = "softmax"
        else:
            kind = "softmax" if units > 1 else "linear"
        self.head = OutputHead(kind, units)
        self._split_layer = out_layer if squash else None
        self._twin: keras.layers.Layer | None = None
        if self._split_layer is not None and not isinstance(out_layer, (keras.layers.Activation, keras.layers.Softmax)):
            self._twin = linear_twin(out_layer)
        expected = 2 if kind == "sigmoid" else units
        if not self.class_names:
            self.class_names = [f"class {i}" for i in range(expected)]
        if len(self.class_names) != expected:
            raise ValueError(f"The model has {expected} classes but {len(self.class_names)} class names were given.")
        self.conv_layers: list[str] = graph.spatial_layers(self.model)

    # ---- logits -----------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def logits_override(self, extra: graph.Override | None = None) -> graph.Override:
        """An override for ``graph.run`` that stops before the final squashing."""

        def override(path: str, layer: keras.layers.Layer) -> Callable[..., Any] | None:
            if path == self._output_path and self._split_layer is not None:
                if self._twin is None:
                    return lambda x, *a, **k: x
                return self._twin
            return extra(path, layer) if extra else None

        return override

    def sync_logits_head(self) -> None:
        """After the output layer's weights change in place, give them to the linear twin the logits view runs.

        (A Dense layer with a softmax or sigmoid is run as a linear copy of itself, so the logits
        come before the squashing; the copy holds its own weights.)
        """
        if self._twin is not None and self._split_layer is not None:
            for t, s in zip(self._twin.weights, self._split_layer.weights, strict=True):
                t.assign(s.value)

    def _head_logits(self, raw: Any) -> Any:
        if self.head.kind == "sigmoid":
            half = raw / 2.0
            return keras.ops.concatenate([-half, half], axis=-1)
        return raw

    def run(self, x: Any, taps: Sequence[str] = (), override: graph.Override | None = None) -> tuple[Any, dict]:
        """Logits (N, K) and tapped layer outputs for a preprocessed batch (eager, traced or symbolic)."""
        raw, tapped = graph.run(self.model, x, tuple(taps), self.logits_override(override))
        return self._head_logits(raw), tapped

    def tap_model(self, taps: Sequence[str] = ()) -> keras.Model:
        """A Keras model: input -> [tapped outputs..., logits]. Cached per set of taps."""
        key = ("tap_model", tuple(taps))
        with self._lock:
            if key not in self._cache:
                for t in taps:
                    graph.find_layer(self.model, t)
                inp = keras.Input(shape=self.input_shape)
                logits, tapped = self.run(inp, taps)
                self._cache[key] = keras.Model(inp, [*(tapped[t] for t in taps), logits])
            return self._cache[key]

    @property
    def logits_model(self) -> keras.Model:
        return self.tap_model(())

    def cached(self, key: Any, build: Callable[[], Any]) -> Any:
        """A per-handle cache for compiled functions (``tf.function``s) of the methods."""
        with self._lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    # ---- images in, numbers out -------------------------------------------------
    def prepare(self, images: np.ndarray) -> np.ndarray:
        """Pictures (any size, uint8 or 0..1 float, gray or RGB) -> model input float32 (N, H, W, C)."""
        h, w, c = self.input_shape
        pixels = resize_batch(match_channels(to_pixels(images), c), h, w)
        return self.preprocessing(pixels)

    def logits(self, images: np.ndarray, batch_size: int = 64, prepared: bool = False) -> np.ndarray:
        import tensorflow as tf

        x = images if prepared else self.prepare(images)
        fn = self.cached("logits_fn", lambda: tf.function(lambda b: self.logits_model(b, training=False)))
        outs = [fn(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(outs, axis=0)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Logits -> what the model reports: softmax, or sigmoid per unit, or the raw score."""
        z = np.asarray(logits, dtype=np.float64)
        if self.head.kind in ("softmax", "sigmoid"):
            z = z - z.max(axis=-1, keepdims=True)
            e = np.exp(z)
            return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
        if self.head.kind == "multilabel":
            return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        return z.astype(np.float32)

    def predict(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, K) probabilities for pictures of any size."""
        return self.probabilities(self.logits(images, batch_size))

    def top_k(self, image: np.ndarray, k: int = 5) -> list[tuple[int, str, float]]:
        probs = self.predict(image)[0]
        order = np.argsort(-probs)[:k]
        return [(int(i), self.class_names[i], float(probs[i])) for i in order]

    def layer(self, path: str) -> keras.layers.Layer:
        return graph.find_layer(self.model, path)

    @property
    def last_conv_layer(self) -> str:
        if not self.conv_layers:
            raise ValueError(f"Model {self.name!r} has no layer with a spatial (N, H, W, C) output.")
        return self.conv_layers[-1]
