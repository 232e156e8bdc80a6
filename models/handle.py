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
        shape = self.model.input_shape
        if isinstance(shape, list):
            raise ValueError("Models with several inputs are not supported; CNN Lens explains one image input.")
        if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[3] not in (1, 3):
            raise ValueError(
                f"The model's input must be (height, width, 1 or 3) with a fixed size; it is {tuple(shape[1:])}."
            )
        self.input_shape: tuple[int, int, int] = (int(shape[1]), int(shape[2]), int(shape[3]))
        self._output_path = graph.output_layer_path(self.model)
        out_layer = graph.find_layer(self.model, self._output_path)
        squash = _activation_name(out_layer)
        units = int(self.model.output_shape[-1])
        if len(self.model.output_shape) != 2:
            raise ValueError(f"The model's output must be (batch, classes); it is {self.model.output_shape}.")
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
