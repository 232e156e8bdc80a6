"""Model-randomisation sanity check: does the map change when the model's weights are random?

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim (2018), "Sanity checks for saliency
maps", NeurIPS, arXiv:1810.03292 (Sec. 3, "model parameter randomization test").

A map that explains *the model* must depend on the model's weights. The check re-draws
the weights block by block (or layer by layer) and explains the same picture and class
again after each step:

- ``mode="cascading"``: from the logits downward, each step adding one more block, until
  every weight is random;
- ``mode="independent"``: one block at a time, the others keeping their trained values.

Each step reports what was randomised, the map, and its similarity to the original map
(:mod:`interpret.metrics.similarity`: Spearman rank correlation signed and of absolute
values, SSIM, HOG similarity). Adebayo et al. found that guided backprop and guided
Grad-CAM hardly change (they act like edge detectors) while gradients and Grad-CAM do.

**Passing** (fixed here, before looking at any result): the rank correlation of absolute
values with the original map falls below ``PASS_SPEARMAN`` = 0.5 after the last cascading
step (everything random); in independent mode, after every step.

**The user's model is never modified.** The randomised model is a copy
(``keras.models.clone_model``, weights copied layer by layer by path, nested sub-models
included). The copy is kept on the handle with its compiled functions, reset from the
original at the start of each check and randomised *in place* step by step (in independent
mode, each block is put back from the original after its step), so no check copies the
weights more than once. Two checks on the same model at once use separate copies.

Randomised weights (seeded): kernels (2-D and more) are drawn as Keras draws a fresh
layer's kernel (Glorot uniform, fans as ``keras.initializers``); scales that must stay
positive (BatchNorm ``gamma`` and ``moving_variance``) uniformly in 0.5..1.5; every other
vector (biases, ``beta``, ``moving_mean``) from N(0, 0.1^2). Randomising any float weight
this way changes all of its entries.

Blocks (``granularity="block"``): layers whose name carries a ``block`` number
(``block1_conv1``, ``block_3_expand``, ``conv2_block1_1_conv``, ``block1a_...``) form one
block per number; a normalisation layer joins the layer before it; layers that share a
name stem (``expanded_conv_depthwise``, ``expanded_conv_project``) join; any other layer
with weights is a block of its own. ``granularity="layer"``: every layer with weights is a
step of its own.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from interpret.batching import best_batch_size
from interpret.core import explain, resolve_target
from interpret.metrics.baselines import BASELINES, baseline_map
from interpret.metrics.perturb import part_of
from interpret.metrics.similarity import hog_similarity, spearman, ssim
from interpret.progress import Progress
from interpret.registry import METHODS
from models import graph
from models.handle import ModelHandle

MODES = ("cascading", "independent")
GRANULARITIES = ("block", "layer")
PASS_SPEARMAN = 0.5
COPY_KEY = ("sanity", "randomised copy")
BLOCK_NAME = re.compile(r"^(.*?block_?\d+[a-z]?)(?:_|$)", re.IGNORECASE)
NORMALISATION = tuple(
    getattr(keras.layers, name)
    for name in ("BatchNormalization", "LayerNormalization", "GroupNormalization")
    if hasattr(keras.layers, name)
)
POSITIVE = ("gamma", "moving_variance")


@dataclass
class SanityStep:
    """One randomisation step and how alike its map is to the original map."""

    block: str  # the block randomised at this step
    randomised: list[str]  # every layer path whose weights are random during this step
    heatmap: np.ndarray  # float32 (H, W) over the picture
    spearman: float
    spearman_abs: float
    ssim: float
    hog: float


@dataclass
class SanityCheck:
    """The original map and one :class:`SanityStep` per block (logits first)."""

    method: str
    mode: str
    granularity: str
    target: int
    target_name: str
    layer: str | None
    original: np.ndarray
    steps: list[SanityStep] = field(default_factory=list)
    seconds: float = 0.0
    threshold: float = PASS_SPEARMAN

    @property
    def passed(self) -> bool:
        """The map changed: |Spearman| below the threshold at the last cascading step (independent: at every step)."""
        if not self.steps:
            return False
        if self.mode == "cascading":
            return bool(self.steps[-1].spearman_abs < self.threshold)
        return all(s.spearman_abs < self.threshold for s in self.steps)


@dataclass
class Block:
    name: str
    paths: list[str]
    stem: str | None = None
    numbered: bool = False


# ---- which layers, in which blocks ------------------------------------------------------
def weighted_layers(model: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
    """(path, layer) of every layer with weights, at any depth, in execution order (each layer once)."""
    seen: set[int] = set()
    out = []
    for path, layer in graph.iter_layers(model):
        if graph.is_container(layer) or not layer.weights or id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append((path, layer))
    return out


def _stem(name: str) -> str | None:
    head, sep, tail = name.rpartition("_")
    return head if sep and head and not tail.isdigit() else None


def randomisation_blocks(model: keras.Model, granularity: str = "block") -> list[Block]:
    """The steps of the check, bottom (input) to top (logits): see the module docstring."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity={granularity!r}: choose one of {', '.join(GRANULARITIES)}.")
    blocks: list[Block] = []
    for path, layer in weighted_layers(model):
        if granularity == "layer":
            blocks.append(Block(path, [path]))
            continue
        prefix, sep, name = path.rpartition(graph.SEP)
        last = blocks[-1] if blocks else None
        same_level = last is not None and last.paths[-1].rpartition(graph.SEP)[0] == prefix
        numbered = BLOCK_NAME.match(name)
        if numbered:
            key = prefix + sep + numbered.group(1)
            if last is not None and last.name == key:
                last.paths.append(path)
            else:
                blocks.append(Block(key, [path], numbered=True))
        elif same_level and isinstance(layer, NORMALISATION) and not last.numbered:
            last.paths.append(path)
        elif same_level and not last.numbered and _stem(name) is not None and _stem(name) == last.stem:
            last.paths.append(path)
            last.name = prefix + sep + last.stem
        else:
            blocks.append(Block(path, [path], stem=_stem(name)))
    return blocks


# ---- random weights ---------------------------------------------------------------------
def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel, as ``keras.initializers`` computes them."""
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    receptive = int(np.prod(shape[:-2]))
    return int(shape[-2]) * receptive, int(shape[-1]) * receptive


def random_weight(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Fresh random values for one weight (see the module docstring for the rule)."""
    if len(shape) >= 2:
        fan_in, fan_out = fans(shape)
        limit = np.sqrt(6.0 / max(1, fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    if name.rsplit("/", 1)[-1] in POSITIVE:
        return rng.uniform(0.5, 1.5, shape)
    return rng.normal(0.0, 0.1, shape)


def randomise_layer(layer: keras.layers.Layer, rng: np.random.Generator) -> None:
    """Re-draw every float weight of ``layer`` in place."""
    for var in layer.weights:
        if "float" not in str(var.dtype):
            continue
        var.assign(random_weight(var.name, tuple(var.shape), rng).astype(str(var.dtype)))


# ---- the copy ---------------------------------------------------------------------------
def copy_weights(source: keras.Model, target: keras.Model, paths: list[str] | None = None) -> None:
    """Set the weights of ``target``'s layers from ``source``'s layers of the same path (all, or ``paths``)."""
    targets = dict(weighted_layers(target))
    for path, layer in weighted_layers(source):
        if paths is None or path in paths:
            targets[path].set_weights(layer.get_weights())


def clone_handle(m: ModelHandle) -> ModelHandle:
    """A handle on a copy of ``m``'s model with the same weights and nothing shared with it."""
    model = keras.models.clone_model(m.model)
    originals = {id(v) for v in m.model.weights}
    if any(id(v) in originals for v in model.weights):
        raise RuntimeError("keras.models.clone_model shared a weight with the original model.")
    copy_weights(m.model, model)
    copy = ModelHandle(f"{m.name} (randomised copy)", model, m.preprocessing, list(m.class_names), source=m.source)
    copy.cached("best_batch_size", lambda: best_batch_size(m))  # measured once, on the original
    return copy


@dataclass
class _Kept:
    copy: ModelHandle
    lock: threading.Lock = field(default_factory=threading.Lock)
    dirty: bool = False  # a check has randomised it since it was made


def _kept(m: ModelHandle) -> _Kept:
    return m.cached(COPY_KEY, lambda: _Kept(clone_handle(m)))


def cached_copy(m: ModelHandle) -> ModelHandle:
    """The copy kept on ``m`` for sanity checks (made on first use); its weights are whatever the last check left."""
    return _kept(m).copy


@contextmanager
def model_copy(m: ModelHandle) -> Iterator[ModelHandle]:
    """A copy of ``m`` with the original's weights: the kept one when free, else a fresh one."""
    kept = _kept(m)
    if not kept.lock.acquire(blocking=False):  # another check is randomising it right now
        yield clone_handle(m)
        return
    try:
        if kept.dirty:
            copy_weights(m.model, kept.copy.model)
            kept.copy.sync_logits_head()
        kept.dirty = True
        yield kept.copy
    finally:
        kept.lock.release()


# ---- the check --------------------------------------------------------------------------
def _heatmap(h: ModelHandle, image: np.ndarray, method: str, target: int, layer, seed: int, params, progress):
    if method in BASELINES:
        return baseline_map(method, image, seed)
    return explain(h, image, method, target=target, layer=layer, progress=progress, **params).heatmap


def sanity_check(
    m: ModelHandle,
    image: np.ndarray,
    method: str = "gradcam",
    target: int | str | None = None,
    mode: str = "cascading",
    *,
    layer: str | None = None,
    granularity: str = "block",
    seed: int = 0,
    progress: Callable[[float, str], None] | Progress | None = None,
    **params: Any,
) -> SanityCheck:
    """Randomise a copy of the model step by step and compare ``method``'s maps with the original one."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: choose one of {', '.join(MODES)}.")
    if method not in METHODS and method not in BASELINES:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join([*METHODS, *BASELINES])}.")
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    started = time.perf_counter()
    blocks = randomisation_blocks(m.model, granularity)[::-1]  # from the logits downward
    if not blocks:
        raise ValueError(f"{m.name} has no layer with weights to randomise.")
    n = len(blocks) + 1
    progress(0.0, "sanity check: the original map")
    if method in BASELINES:
        t = resolve_target(m, target, m.logits(image)[0] if target is None else None)
        original, chosen_layer = baseline_map(method, image, seed), None
    else:
        e = explain(m, image, method, target=target, layer=layer, progress=part_of(progress, 0, 1 / n), **params)
        t, original, chosen_layer = e.target, e.heatmap, e.layer
    result = SanityCheck(method, mode, granularity, t, m.class_names[t], chosen_layer, original)
    random_now: list[str] = []
    with model_copy(m) as copy:
        layers = dict(weighted_layers(copy.model))
        for i, block in enumerate(blocks):
            progress((i + 1) / n, f"sanity check: randomising {block.name} ({i + 1}/{len(blocks)})")
            saved = {p: layers[p].get_weights() for p in block.paths} if mode == "independent" else {}
            rng = np.random.default_rng((int(seed), i))
            for p in block.paths:
                randomise_layer(layers[p], rng)
            copy.sync_logits_head()
            random_now = [*random_now, *block.paths] if mode == "cascading" else list(block.paths)
            part = part_of(progress, (i + 1) / n, (i + 2) / n, f"randomised {block.name}: ")
            heat = _heatmap(copy, image, method, t, chosen_layer, seed, params, part)
            result.steps.append(
                SanityStep(
                    block=block.name,
                    randomised=random_now,
                    heatmap=np.asarray(heat, dtype=np.float32),
                    spearman=spearman(original, heat),
                    spearman_abs=spearman(np.abs(original), np.abs(heat)),
                    ssim=ssim(original, heat),
                    hog=hog_similarity(original, heat),
                )
            )
            if saved:
                for p, values in saved.items():
                    layers[p].set_weights(values)
                copy.sync_logits_head()
    progress(1.0, "sanity check: done")
    result.seconds = time.perf_counter() - started
    return result
