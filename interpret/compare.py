"""Side by side: several methods x several target classes for one picture.

The lecture's figure (after Selvaraju et al. (2017), "Grad-CAM", arXiv:1610.02391, Fig. 1):
guided backprop, Grad-CAM, guided Grad-CAM and occlusion for "Cat" and "Dog".

The methods share their passes where they can:

- Grad-CAM, guided backprop and guided Grad-CAM for all chosen classes come from one
  batched call (one row per class) of one compiled function: one forward pass, a plain
  backward pass to the layer and a guided one to the input
  (``interpret.guided_gradcam.guided_and_layer_gradients``);
- saliency for all classes is one batched input-gradient call;
- occlusion scores every class with the same occluded copies, so its forward passes are
  run once for all classes;
- any other registered method runs through ``explain`` once per class.

Each map equals what ``explain`` gives for that method and class.
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
from interpret.gradcam import gradcam_weights, weighted_map
from interpret.gradients import input_gradients
from interpret.guided_gradcam import guided_and_layer_gradients, guided_gradcam_product
from interpret.progress import Progress
from interpret.registry import METHODS
from interpret.saliency import saliency_map
from models.handle import ModelHandle
from models.preprocessing import as_batch, resize_map

MAX_METHODS = 12
MAX_TARGETS = 6
GRADIENT_FAMILY = ("gradcam", "guided_backprop", "guided_gradcam")


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


def _occlusion_all_targets(m: ModelHandle, x: np.ndarray, targets: list[int], params: dict, progress: Progress) -> list:
    """Occlusion maps for every target from one set of occluded forward passes."""
    from interpret import occlusion as occ

    logits, corners, patch, _ = occ.occluded_logits(
        m,
        x,
        params.get("patch", 0),
        params.get("stride", 0),
        params.get("fill", "zero"),
        params.get("batch_size", 0),
        progress,
    )
    return [occ.occlusion_map(logits[0, t] - logits[1:, t], corners, m.input_shape[:2], patch) for t in targets]


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
    needs_layer = any(METHODS[name].uses_layer for name in methods) or any(n in GRADIENT_FAMILY for n in methods)
    chosen_layer = resolve_layer(m, layer) if needs_layer else None
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    maps: dict[tuple[str, int], tuple[np.ndarray, str]] = {}
    batch = np.repeat(x, len(targets), axis=0)
    steps = len(methods) + 1
    done = 0

    family = [n for n in methods if n in GRADIENT_FAMILY]
    if family:
        progress(0.0, "Grad-CAM and guided backprop: one batched pass for all classes")
        acts, layer_grads, guided, _ = guided_and_layer_gradients(m, batch, chosen_layer, np.array(targets))
        note = f"one batched pass for {len(targets)} classes"
        for row, t in enumerate(targets):
            cam = weighted_map(acts[row], gradcam_weights(layer_grads[row]))
            if "gradcam" in family:
                maps[("gradcam", t)] = (cam, note)
            if "guided_backprop" in family:
                maps[("guided_backprop", t)] = (saliency_map(guided[row]), note)
            if "guided_gradcam" in family:
                maps[("guided_gradcam", t)] = (saliency_map(guided_gradcam_product(guided[row], cam)), note)
        done += len(family)
    if "saliency" in methods:
        grads, _ = input_gradients(m, batch, np.array(targets))
        for row, t in enumerate(targets):
            maps[("saliency", t)] = (saliency_map(grads[row]), f"one batched pass for {len(targets)} classes")
        done += 1
    for name in methods:
        if any(key[0] == name for key in maps):
            continue
        progress(done / steps, f"{METHODS[name].title}")
        if name == "occlusion":
            for t, heat in zip(targets, _occlusion_all_targets(m, x, targets, checked[name], progress), strict=True):
                maps[(name, t)] = (heat, f"one set of occluded passes for {len(targets)} classes")
        else:
            for t in targets:
                e = explain(m, picture[0], method=name, target=t, layer=chosen_layer, progress=None, **checked[name])
                maps[(name, t)] = (e.heatmap, "")
        done += 1
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
                    layer=chosen_layer if (spec.uses_layer or name in GRADIENT_FAMILY) else None,
                    score=float(logits[t]),
                    shared=note,
                )
            )
    return CompareGrid(methods, targets, [m.class_names[t] for t in targets], panels, chosen_layer)


def panel_scales(grid: CompareGrid, shared: bool) -> dict[tuple[str, int], float | None]:
    """Colour scale (vmax) per panel: ``None`` = each panel on its own; shared = one scale per method (row).

    Sharing across methods would compare unlike units (logit changes, gradients, CAM values),
    so "shared" means shared by the classes of one method.
    """
    scales: dict[tuple[str, int], float | None] = {}
    for name in grid.methods:
        row = [p for p in grid.panels if p.method == name]
        if shared:
            vmax = max(float(np.abs(p.heatmap).max() if p.signed else p.heatmap.max()) for p in row)
            vmax = vmax if vmax > 0 else None
        else:
            vmax = None
        for p in row:
            scales[(p.method, p.target)] = vmax
    return scales


def grid_png(
    grid: CompareGrid,
    image: np.ndarray,
    shared: bool = False,
    alpha: float = 0.5,
    cmap: str = "jet",
    dpi: int = 100,
    signed_cmap: str = "coolwarm",
) -> bytes:
    """The grid as one PNG: a row per method, a column per class, the picture first.

    Signed maps (e.g. occlusion) use ``signed_cmap``, a diverging colormap centred on zero.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interpret.render import as_rgb, overlay

    scales = panel_scales(grid, shared)
    rows, cols = len(grid.methods), len(grid.targets) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    for r, name in enumerate(grid.methods):
        axes[r][0].imshow(as_rgb(image))
        axes[r][0].set_ylabel(METHODS[name].title, fontsize=10)
        for c, t in enumerate(grid.targets, start=1):
            p = grid.panel(name, t)
            axes[r][c].imshow(
                overlay(image, p.heatmap, alpha=alpha, cmap=cmap, signed=p.signed, vmax=scales[(name, t)])
            )
            if r == 0:
                axes[r][c].set_title(f"{p.target_name} ({t})", fontsize=10)
    axes[0][0].set_title("input", fontsize=10)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


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
