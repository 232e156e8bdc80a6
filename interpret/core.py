"""``explain``: one picture, one method, one target -> a heatmap over that picture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from interpret.explanation import Explanation
from interpret.progress import Progress
from interpret.registry import METHODS
from models.handle import ModelHandle
from models.preprocessing import as_batch, resize_map


def resolve_target(m: ModelHandle, target: int | str | None, logits: np.ndarray | None) -> int:
    if target is None:
        return int(np.argmax(logits))
    if isinstance(target, str):
        if target not in m.class_names:
            raise ValueError(f"Unknown class {target!r}.")
        if m.class_names.count(target) > 1:
            raise ValueError(f"Several classes are named {target!r}; give the class index instead.")
        return m.class_names.index(target)
    t = int(target)
    if not 0 <= t < m.num_classes:
        raise ValueError(f"target={target} is out of range: this model has classes 0..{m.num_classes - 1}.")
    return t


def resolve_layer(m: ModelHandle, layer: str | None) -> str:
    if layer is None:
        return m.last_conv_layer
    if layer not in m.conv_layers:
        hint = ", ".join(m.conv_layers[-5:])
        raise ValueError(f"Layer {layer!r} has no spatial (H, W, C) output in {m.name}; the last ones are: {hint}.")
    return layer


def explain(
    m: ModelHandle,
    image: np.ndarray,
    method: str = "gradcam",
    target: int | str | None = None,
    layer: str | None = None,
    progress: Callable[[float, str], None] | Progress | None = None,
    **params: Any,
) -> Explanation:
    """Explain the model's score for ``target`` (default: top-1) on one picture of any size."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    spec = METHODS[method]
    checked = spec.check_params(params)
    picture = as_batch(image)
    if len(picture) != 1:
        raise ValueError(f"explain takes one picture; got a batch of {len(picture)}.")
    height, width = picture.shape[1:3]
    x = m.prepare(picture)
    # Only the top-1 default needs a forward pass up front; with an explicit target the
    # method's own pass usually reports the score (gradient methods: no extra pass at all).
    logits = m.logits(x, prepared=True)[0] if target is None else None
    t = resolve_target(m, target, logits)
    chosen_layer = resolve_layer(m, layer) if spec.uses_layer else None
    if not isinstance(progress, Progress):
        progress = Progress(progress)
    progress(0.0, f"{spec.title}: starting")
    result = spec.fn(m, x, t, layer=chosen_layer, progress=progress, **checked)
    progress(1.0, f"{spec.title}: done")
    if result.score is not None:
        score = result.score
    else:
        score = float((logits if logits is not None else m.logits(x, prepared=True)[0])[t])
    heat = np.nan_to_num(np.asarray(result.heatmap, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return Explanation(
        heatmap=resize_map(heat, height, width),
        method=method,
        target=t,
        params=checked,
        extras=result.extras,
        layer=chosen_layer,
        target_name=m.class_names[t],
        score=float(score),
    )
