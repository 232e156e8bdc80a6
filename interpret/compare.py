"""Side by side: several methods x several target classes for one picture.

The lecture's figure (after Selvaraju et al. (2017), "Grad-CAM", arXiv:1610.02391, Fig. 1):
guided backprop, Grad-CAM, guided Grad-CAM and occlusion for "Cat" and "Dog".

The methods share their passes where they can, as each declares in the registry
(``Method.shared_pass``, see :class:`interpret.registry.SharedPass`); this module names no
method:

- a method with a shared pass gets the maps of all chosen classes from one run of it (one
  batched call with a row per class, or one set of perturbed copies scoring every class),
  and methods naming the same key share that run: e.g. Grad-CAM, guided backprop and
  guided Grad-CAM come from one forward pass, a plain backward pass to the layer and a
  guided one to the input;
- any other method runs through ``explain`` once per class.

Each map equals what ``explain`` gives for that method and class. Progress is weighted by
the passes each method makes (``Method.passes``).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interpret.core import explain, resolve_layer, resolve_target
from interpret.progress import Progress
from interpret.registry import METHODS, Method
from models.handle import ModelHandle
from models.preprocessing import as_batch, resize_map

MAX_METHODS = 12
MAX_TARGETS = 6


@dataclass
class Panel:
    method: str
    title: str
    target: int
    target_name: str
    heatmap: np.ndarray  # float32 (H, W) at the picture's size
    signed: bool
    params: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None
    score: float = float("nan")
    shared: str = ""  # how the pass was shared, for the record


@dataclass
class CompareGrid:
    methods: list[str]
    targets: list[int]
    target_names: list[str]
    panels: list[Panel]
    layer: str | None = None

    def panel(self, method: str, target: int) -> Panel:
        for p in self.panels:
            if p.method == method and p.target == target:
                return p
        raise KeyError((method, target))


def _finite(heat: np.ndarray, h: int, w: int) -> np.ndarray:
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return resize_map(heat, h, w)


def _needs_layer(spec: Method) -> bool:
    return spec.uses_layer or (spec.shared_pass is not None and spec.shared_pass.needs_layer)


def _share_note(spec: Method, passes: int, classes: int) -> str:
    what = (
        "one batched pass"
        if passes == 1
        else f"one set of {passes} {'forward+backward' if spec.backward else 'forward'} passes"
    )
    return f"{what} for {classes} classes"


def _span(progress: Progress, start: float, stop: float, label: str) -> Callable[[float, str], None]:
    """A progress callback for one part of the grid: its 0..1 mapped onto start..stop of the whole."""

    def report(fraction: float, message: str = "") -> None:
        progress(start + (stop - start) * min(max(float(fraction), 0.0), 1.0), f"{message} ({label})")

    return report


def default_targets(m: ModelHandle, image: np.ndarray, k: int = 2) -> list[int]:
    """The top-k classes for the picture."""
    logits = m.logits(as_batch(image))[0]
    return [int(i) for i in np.argsort(-logits)[: min(k, m.num_classes)]]


def compare(
    m: ModelHandle,
    image: np.ndarray,
    methods: list[str],
    targets: list[int] | None = None,
    layer: str | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[float, str], None] | Progress | None = None,
) -> CompareGrid:
    """Heatmaps for every (method, target) pair; ``targets=None`` means the top-2 classes."""
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ValueError("Choose at least one method to compare.")
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise ValueError(f"Unknown method {', '.join(unknown)}; choose from {', '.join(METHODS)}.")
    if len(methods) > MAX_METHODS:
        raise ValueError(f"Compare at most {MAX_METHODS} methods at once.")
    params = params or {}
    checked = {name: METHODS[name].check_params(params.get(name, {})) for name in methods}
    picture = as_batch(image)
    if len(picture) != 1:
        raise ValueError("Compare takes one picture.")
    height, width = picture.shape[1:3]
    x = m.prepare(picture)
    logits = m.logits(x, prepared=True)[0]
    targets = list(dict.fromkeys(resolve_target(m, t, logits) for t in (targets or default_targets(m, image))))
    if len(targets) > MAX_TARGETS:
        raise ValueError(f"Compare at most {MAX_TARGETS} classes at once.")
    chosen_layer = resolve_layer(m, layer) if any(_needs_layer(METHODS[name]) for name in methods) else None
    progress = progress if isinstance(progress, Progress) else Progress(progress)

    # The work: one job per shared run (the methods with the same key and parameters
    # together), one per method otherwise (explain once per class); each weighted by the
    # passes it makes, for the progress bar.
    passes = {name: METHODS[name].pass_count(checked[name], m.input_shape) for name in methods}
    jobs: dict[tuple, list[str]] = {}
    for name in methods:
        shared = METHODS[name].shared_pass
        key = (name,) if shared is None else (shared.key, tuple(sorted(checked[name].items())))
        jobs.setdefault(key, []).append(name)
    weights = [
        max(passes[n] for n in names) * (1 if METHODS[names[0]].shared_pass else len(targets))
        for names in jobs.values()
    ]
    total = float(sum(weights))

    maps: dict[tuple[str, int], tuple[np.ndarray, str]] = {}
    done = 0
    for names, weight in zip(jobs.values(), weights, strict=True):
        first = METHODS[names[0]]
        start, stop = done / total, (done + weight) / total
        if first.shared_pass is not None:
            title = " + ".join(METHODS[n].title for n in names)
            report = _span(progress, start, stop, f"{title}, {len(targets)} classes")
            report(0.0, "one run for all classes")
            result = first.shared_pass.run(m, x, targets, chosen_layer, checked[names[0]], report)
            note = _share_note(first, max(passes[n] for n in names), len(targets))
            for name in names:
                for i, t in enumerate(targets):
                    maps[(name, t)] = (METHODS[name].shared_pass.heatmap(result, i), note)
        else:
            for i, t in enumerate(targets):
                part = _span(
                    progress,
                    start + (stop - start) * i / len(targets),
                    start + (stop - start) * (i + 1) / len(targets),
                    m.class_names[t],
                )
                e = explain(
                    m, picture[0], method=first.name, target=t, layer=chosen_layer, progress=part, **checked[first.name]
                )
                maps[(first.name, t)] = (e.heatmap, "")
        done += weight
    progress(1.0, "Done")
    panels = []
    for name in methods:
        spec = METHODS[name]
        for t in targets:
            heat, note = maps[(name, t)]
            panels.append(
                Panel(
                    method=name,
                    title=spec.title,
                    target=t,
                    target_name=m.class_names[t],
                    heatmap=_finite(heat, height, width),
                    signed=spec.signed,
                    params=checked[name],
                    layer=chosen_layer if _needs_layer(spec) else None,
                    score=float(logits[t]),
                    shared=note,
                )
            )
    return CompareGrid(methods, targets, [m.class_names[t] for t in targets], panels, chosen_layer)


def grid_zip(grid: CompareGrid, model_name: str = "", image_label: str = "") -> bytes:
    """Every heatmap as NPZ plus ``grid.json`` with the methods, classes, parameters and layer."""
    buf = io.BytesIO()
    record: dict[str, Any] = {
        "model": model_name,
        "image": image_label,
        "layer": grid.layer,
        "methods": grid.methods,
        "targets": grid.targets,
        "target_names": grid.target_names,
        "panels": [],
    }
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in grid.panels:
            name = f"{p.method}__class{p.target}.npz"
            arrays = io.BytesIO()
            np.savez_compressed(arrays, heatmap=p.heatmap)
            z.writestr(name, arrays.getvalue())
            record["panels"].append(
                {
                    "file": name,
                    "method": p.method,
                    "title": p.title,
                    "target": p.target,
                    "target_name": p.target_name,
                    "score": p.score,
                    "signed": p.signed,
                    "layer": p.layer,
                    "params": {
                        k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in p.params.items()
                    },
                    "shape": list(p.heatmap.shape),
                    "shared_pass": p.shared,
                }
            )
        z.writestr("grid.json", json.dumps(record, indent=2))
    return buf.getvalue()
