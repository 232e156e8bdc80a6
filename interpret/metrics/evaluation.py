"""Every metric for several methods: on one picture (the Evaluate page), or over many (the command).

``evaluate_picture`` explains one picture with each method (and the two baselines, which
see no model), then scores *all* the perturbed copies the metrics need (deletion and
insertion steps of every map, each explanation map, MuFidelity's subsets, which every
method shares) in one stream of full batches at the handle's best batch size, and reports
the time spent explaining and scoring. ``evaluate`` does that for each of many pictures
and adds per-method means with 95% confidence intervals (Student's t).

Targets: the class given by ``labels`` (when passed), else each picture's top-1 class.
Seeds: picture ``i`` uses ``seed + i`` for MuFidelity's subsets and the random map, so one
picture evaluated alone with that seed gives the same numbers.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from interpret.core import explain, resolve_target
from interpret.metrics.average_drop import add_explanation_map, confidence_change
from interpret.metrics.baselines import BASELINES, baseline_map
from interpret.metrics.columns import COLUMNS, DEFAULT_METRICS, columns_for
from interpret.metrics.deletion_insertion import Curve, add_curve
from interpret.metrics.mufidelity import add_probe, mufidelity_of, subset_masks
from interpret.metrics.perturb import SUBSTRATES, Plan, check_score, map_for, part_of, picture_pixels, scores_of
from interpret.metrics.sanity import sanity_check
from interpret.progress import Progress
from interpret.registry import METHODS
from models.handle import ModelHandle


def all_methods() -> list[str]:
    """Every registered method, then the two baselines."""
    return [*METHODS, *BASELINES]


def method_title(name: str) -> str:
    return BASELINES[name].title if name in BASELINES else METHODS[name].title


def _check_methods(methods: Sequence[str] | None) -> list[str]:
    chosen = list(all_methods() if methods is None else methods)
    unknown = [n for n in chosen if n not in METHODS and n not in BASELINES]
    if unknown:
        raise ValueError(f"Unknown method {', '.join(unknown)}; choose from {', '.join(all_methods())}.")
    if not chosen:
        raise ValueError("Choose at least one method.")
    return list(dict.fromkeys(chosen))


@dataclass
class PictureEvaluation:
    """Every metric of every method on one picture."""

    target: int
    target_name: str
    predicted: int
    methods: list[str]
    columns: list[str]
    values: dict[str, dict[str, float]]  # method -> column -> value (NaN: not computed)
    curves: dict[str, dict[str, Curve]] = field(default_factory=dict)  # method -> "deletion"/"insertion" -> curve
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)  # only with keep_heatmaps=True
    errors: dict[str, str] = field(default_factory=dict)  # method -> why it has no values (e.g. CAM not applicable)
    explain_seconds: dict[str, float] = field(default_factory=dict)
    score_seconds: float = 0.0
    sanity_seconds: float = 0.0
    original_score: float = float("nan")  # the target's probability on the picture
    settings: dict[str, Any] = field(default_factory=dict)

    def best(self, column: str) -> list[str]:
        """The methods (baselines included) with the best value in ``column``; none when all values are equal."""
        c = COLUMNS[column]
        scored = {n: v[column] for n, v in self.values.items() if np.isfinite(v.get(column, np.nan))}
        if len(set(scored.values())) < 2:
            return []
        top = max(scored.values()) if c.higher_is_better else min(scored.values())
        return [n for n, v in scored.items() if v == top]


def evaluate_picture(
    m: ModelHandle,
    image: np.ndarray,
    methods: Sequence[str] | None = None,
    target: int | str | None = None,
    layer: str | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    steps: int = 20,
    deletion_substrate: str = "zero",
    insertion_substrate: str = "blur",
    score: str = "probability",
    samples: int = 200,
    grid: int = 9,
    subset: float = 0.2,
    seed: int = 0,
    blur_sigma: float | None = None,
    keep_heatmaps: bool = False,
    batch_size: int | None = None,
    progress: Callable[[float, str], None] | Progress | None = None,
) -> PictureEvaluation:
    """Explain ``image`` with each method and score every map with each metric (one batched stream)."""
    methods = _check_methods(methods)
    columns = columns_for(metrics)
    check_score(score)
    for s in (deletion_substrate, insertion_substrate):
        if s not in SUBSTRATES:
            raise ValueError(f"substrate={s!r}: choose one of {', '.join(SUBSTRATES)}.")
    params = params or {}
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    pixels = picture_pixels(image)
    logits = m.logits(image)[0]
    predicted = int(np.argmax(logits))
    t = resolve_target(m, target, logits)
    original = float(m.probabilities(logits[None])[0, t])
    settings = dict(
        steps=steps,
        deletion_substrate=deletion_substrate,
        insertion_substrate=insertion_substrate,
        score=score,
        samples=samples,
        grid=grid,
        subset=subset,
        seed=seed,
        blur_sigma=blur_sigma,
        layer=layer,
    )
    out = PictureEvaluation(t, m.class_names[t], predicted, methods, columns, {}, original_score=original)
    out.settings = settings
    needs_maps = any(c != "sanity" for c in metrics)
    sanity_share = 0.3 if "sanity" in metrics else 0.0
    explain_stop = (0.5 if needs_maps else 0.0) * (1 - sanity_share)

    # 1. the maps
    maps: dict[str, np.ndarray] = {}
    for i, name in enumerate(methods if needs_maps else []):
        part = part_of(progress, explain_stop * i / len(methods), explain_stop * (i + 1) / len(methods))
        part(0.0, f"explaining with {method_title(name)}")
        started = time.perf_counter()
        try:
            if name in BASELINES:
                maps[name] = baseline_map(name, image, seed)
            else:
                maps[name] = explain(
                    m, image, name, target=t, layer=layer, progress=part, **params.get(name, {})
                ).heatmap
        except ValueError as exc:  # e.g. CAM on a model without global average pooling
            out.errors[name] = str(exc)
        out.explain_seconds[name] = time.perf_counter() - started
    if keep_heatmaps:
        out.heatmaps = dict(maps)

    # 2. every perturbed copy of the picture, for every map, in one stream
    started = time.perf_counter()
    plan = Plan(pixels, blur_sigma)
    curve_rows: dict[str, dict[str, Any]] = {n: {} for n in maps}
    drop_rows: dict[str, int] = {}
    for name, heat in maps.items():
        if "deletion" in metrics:
            curve_rows[name]["deletion"] = add_curve(plan, heat, "deletion", steps, deletion_substrate)
        if "insertion" in metrics:
            curve_rows[name]["insertion"] = add_curve(plan, heat, "insertion", steps, insertion_substrate)
        if "average_drop" in metrics:
            drop_rows[name] = add_explanation_map(plan, heat)
    probe_rows = (
        add_probe(plan, subset_masks(grid, samples, subset, seed)) if "mufidelity" in metrics and maps else None
    )
    score_stop = 1 - sanity_share
    all_logits = plan.run(
        m, batch_size, part_of(progress, explain_stop, score_stop), message="scoring perturbed copies"
    )
    probe = probe_rows.probe(m, all_logits, t, "logit") if probe_rows is not None else None
    for name in methods:
        values = dict.fromkeys(columns, float("nan"))
        if name in maps:
            curves = {k: r.curve(m, all_logits, t, score) for k, r in curve_rows[name].items()}
            out.curves[name] = curves
            if "deletion" in curves:
                values["deletion_auc"] = curves["deletion"].auc
            if "insertion" in curves:
                values["insertion_auc"] = curves["insertion"].auc
            if name in drop_rows:
                masked = float(scores_of(m, all_logits[[drop_rows[name]]], t, "probability")[0])
                change = confidence_change(original, masked, t)
                values["average_drop"], values["increase_in_confidence"] = change.drop, change.increase
            if probe is not None:
                values["mufidelity"] = mufidelity_of(probe, map_for(maps[name], plan.shape))
        out.values[name] = values
    out.score_seconds = time.perf_counter() - started

    # 3. the sanity check (cascading, block by block), on a randomised copy of the model
    if "sanity" in metrics:
        started = time.perf_counter()
        for i, name in enumerate(methods):
            if name in out.errors:
                continue
            part = part_of(
                progress,
                score_stop + sanity_share * i / len(methods),
                score_stop + sanity_share * (i + 1) / len(methods),
            )
            try:
                check = sanity_check(
                    m, image, name, target=t, layer=layer, seed=seed, progress=part, **params.get(name, {})
                )
            except ValueError as exc:
                out.errors[name] = str(exc)
                continue
            last = check.steps[-1]
            out.values[name].update(
                sanity_spearman_abs=last.spearman_abs,
                sanity_spearman=last.spearman,
                sanity_ssim=last.ssim,
                sanity_hog=last.hog,
            )
        out.sanity_seconds = time.perf_counter() - started
    progress(1.0, "metrics: done")
    return out


# ---- many pictures ------------------------------------------------------------------------
@dataclass
class Summary:
    """Mean of one column for one method over the pictures, with its 95% confidence interval."""

    method: str
    column: str
    mean: float
    low: float
    high: float
    n: int


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) over the finite values; Student's t interval (NaN bounds for n < 2)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


@dataclass
class Evaluation:
    """Per-picture values of every column for every method, and their summaries."""

    model: str
    methods: list[str]
    columns: list[str]
    images: np.ndarray  # (n,) int: index of each picture in the input
    targets: np.ndarray  # (n,) int
    predicted: np.ndarray  # (n,) int
    labels: np.ndarray  # (n,) int, -1 where no labels were given
    values: dict[str, np.ndarray]  # column -> (methods, n) float64; NaN where not computed
    errors: dict[str, str] = field(default_factory=dict)
    explain_seconds: dict[str, float] = field(default_factory=dict)  # method -> total over the pictures
    score_seconds: float = 0.0
    sanity_seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> list[Summary]:
        out = []
        for i, method in enumerate(self.methods):
            for column in self.columns:
                mean, low, high, n = mean_ci(self.values[column][i])
                out.append(Summary(method, column, mean, low, high, n))
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per (picture, method), long enough for a spreadsheet."""
        out = []
        for j, index in enumerate(self.images):
            for i, method in enumerate(self.methods):
                row = {
                    "image": int(index),
                    "label": int(self.labels[j]),
                    "target": int(self.targets[j]),
                    "predicted": int(self.predicted[j]),
                    "method": method,
                }
                row.update({c: float(self.values[c][i, j]) for c in self.columns})
                out.append(row)
        return out


def evaluate(
    m: ModelHandle,
    images: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[int] | np.ndarray | None = None,
    methods: Sequence[str] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    progress: Callable[[float, str], None] | Progress | None = None,
    *,
    layer: str | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    **options: Any,
) -> Evaluation:
    """The metrics of ``methods`` (default: all, and both baselines) over many pictures.

    ``options`` go to :func:`evaluate_picture` (``steps``, substrates, ``score``, ``samples``,
    ``grid``, ``subset``, ``blur_sigma``, ``batch_size``).
    """
    methods = _check_methods(methods)
    columns = columns_for(metrics)
    n = len(images)
    if n == 0:
        raise ValueError("No pictures to evaluate.")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} pictures.")
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    values = {c: np.full((len(methods), n), np.nan) for c in columns}
    result = Evaluation(
        m.name,
        methods,
        columns,
        np.arange(n),
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64),
        values,
        explain_seconds=dict.fromkeys(methods, 0.0),
    )
    for j in range(n):
        part = part_of(progress, j / n, (j + 1) / n, f"picture {j + 1}/{n}: ")
        target = None if labels is None else int(labels[j])
        one = evaluate_picture(
            m, images[j], methods, target, layer, params, metrics, seed=seed + j, progress=part, **options
        )
        result.targets[j], result.predicted[j] = one.target, one.predicted
        for i, method in enumerate(methods):
            for c in columns:
                values[c][i, j] = one.values[method][c]
            result.explain_seconds[method] += one.explain_seconds.get(method, 0.0)
        for method, message in one.errors.items():
            result.errors.setdefault(method, message)
        result.score_seconds += one.score_seconds
        result.sanity_seconds += one.sanity_seconds
        result.settings = {**one.settings, "seed": seed, "targets": "labels" if labels is not None else "top-1"}
    return result


# ---- writing it down ------------------------------------------------------------------------
def write_csv(evaluation: Evaluation, path: str | Path) -> Path:
    """One row per (picture, method)."""
    path = Path(path)
    rows = evaluation.rows()
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def report(evaluation: Evaluation) -> dict[str, Any]:
    """The summary as plain JSON-ready data: means, 95% CIs, which way is better, the papers, the times."""
    return {
        "model": evaluation.model,
        "pictures": int(len(evaluation.images)),
        "methods": evaluation.methods,
        "settings": evaluation.settings,
        "columns": {
            c: {"title": COLUMNS[c].title, "higher_is_better": COLUMNS[c].higher_is_better, "paper": COLUMNS[c].paper}
            for c in evaluation.columns
        },
        "summary": [
            {
                "method": s.method,
                "column": s.column,
                "mean": _finite(s.mean),
                "ci95": [_finite(s.low), _finite(s.high)],
                "n": s.n,
            }
            for s in evaluation.summary()
        ],
        "errors": evaluation.errors,
        "seconds": {
            "explaining": evaluation.explain_seconds,
            "scoring": evaluation.score_seconds,
            "sanity": evaluation.sanity_seconds,
        },
    }


def write_json(evaluation: Evaluation, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(report(evaluation), indent=2) + "\n")
    return path
