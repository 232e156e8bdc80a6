"""Command line: faithfulness metrics over many pictures, written as CSV and JSON (also ``cnn-lens evaluate``).

    python -m interpret.evaluate --model fashion-mnist-cnn --dataset fashion-mnist-test --limit 1000 \
        --methods gradcam,saliency,random,edge --out results/fashion
    python -m interpret.evaluate --model my_model.keras --class-names classes.txt --dataset photos.zip --labels \
        --metrics deletion,insertion,sanity --out results/mine

Writes ``OUT.csv`` (one row per picture and method) and ``OUT.json`` (per-method means with
95% confidence intervals, which way is better, the papers, the time spent explaining and
scoring), and prints the summary. A progress bar goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from interpret.__main__ import comma_list, method_params

PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def pictures(args: argparse.Namespace, input_shape: tuple[int, int, int]):
    """(pictures, labels or None, where they came from); pictures that do not decode are reported and skipped."""
    if args.dataset:
        import numpy as np

        from models.datasets import load_dataset

        ds = load_dataset(args.dataset)
        stop = len(ds) if args.limit is None else min(len(ds), args.offset + args.limit)
        images, kept = [], []
        # each picture read and scaled to the model's input as it is decoded (the metrics then work at that size)
        for indices, pixels in ds.batches(256, input_shape, np.arange(args.offset, stop)):
            images += list(pixels)
            kept += [int(i) for i in indices]
        for problem in ds.problems:
            print(f"skipped: {problem}", file=sys.stderr)
        return images, (ds.labels[kept] if ds.labeled else None), ds.name
    from interpret.images import read_image

    paths: list[Path] = []
    for given in args.images:
        p = Path(given)
        paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in PICTURE_SUFFIXES) if p.is_dir() else [p]
    paths = paths[args.offset : None if args.limit is None else args.offset + args.limit]
    if not paths:
        raise ValueError("No pictures found.")
    return [read_image(p) for p in paths], None, f"{len(paths)} files"


class Bar:
    """A one-line text progress bar on stderr, redrawn at most every 0.2 s."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.last = 0.0
        self.started = time.perf_counter()

    def __call__(self, fraction: float, message: str = "") -> None:
        now = time.perf_counter()
        if self.quiet or (now - self.last < 0.2 and fraction < 1.0):
            return
        self.last = now
        done = int(30 * fraction)
        elapsed = now - self.started
        eta = f" ETA {elapsed / fraction - elapsed:5.0f}s" if 0 < fraction < 1 else ""
        print(f"\r[{'#' * done}{' ' * (30 - done)}] {fraction:4.0%}{eta} {message[:60]:<60}", end="", file=sys.stderr)
        if fraction >= 1.0:
            print(file=sys.stderr)


def summary_table(evaluation) -> str:
    """Per-method means with 95% CIs, one column per metric, the direction in the header."""
    from interpret.metrics import COLUMNS

    by = {(s.method, s.column): s for s in evaluation.summary()}
    width = max(len(m) for m in evaluation.methods) + 2
    head = f"{'method':<{width}}" + "".join(f"{COLUMNS[c].heading:>38}" for c in evaluation.columns)
    lines = [head]
    for method in evaluation.methods:
        cells = []
        for c in evaluation.columns:
            s = by[(method, c)]
            cells.append(f"{s.mean:>12.4f} [{s.low:.4f}, {s.high:.4f}] n={s.n:<4}".rjust(38))
        lines.append(f"{method:<{width}}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "python -m interpret.evaluate") -> int:
    from interpret.metrics import METRICS
    from interpret.metrics.evaluation import all_methods

    parser = argparse.ArgumentParser(
        prog=prog, description="Faithfulness metrics and sanity checks over many pictures."
    )
    parser.add_argument("--model", default="fashion-mnist-cnn", help="bundled/zoo name or path to a .keras file")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--dataset", help="fashion-mnist-test, fashion-mnist-train, or a folder / .zip with one sub-folder per class"
    )
    source.add_argument("--images", nargs="+", help="picture files or folders")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pictures (after --offset)")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--labels", action="store_true", help="explain the labelled class (default: top-1)")
    parser.add_argument(
        "--methods", type=comma_list, default=None, help=f"comma-separated (default: all): {','.join(all_methods())}"
    )
    parser.add_argument(
        "--metrics",
        type=comma_list,
        default=["deletion", "insertion", "average_drop", "mufidelity"],
        help=f"comma-separated: {','.join(METRICS)}",
    )
    parser.add_argument("--layer", default=None, help="layer path for CAM methods (default: last conv)")
    parser.add_argument("--param", action="append", default=[], help="method parameter METHOD.NAME=VALUE")
    parser.add_argument("--steps", type=int, default=20, help="deletion/insertion steps")
    parser.add_argument("--samples", type=int, default=200, help="MuFidelity subsets per picture")
    parser.add_argument(
        "--score", choices=("probability", "logit"), default="probability", help="deletion/insertion score"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--class-names", default=None, help="text/JSON file of class names for a .keras model")
    parser.add_argument("--weights", default="imagenet", help="zoo weights: imagenet or none")
    parser.add_argument("--out", required=True, help="output path without suffix: writes OUT.csv and OUT.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from interpret.metrics import evaluate, write_csv, write_json
    from models import load
    from models.class_names import parse_class_names

    try:
        names = parse_class_names(Path(args.class_names).read_bytes()) if args.class_names else None
        m = load(args.model, class_names=names, weights=None if args.weights.lower() == "none" else args.weights)
        images, labels, where = pictures(args, m.input_shape)
        started = time.perf_counter()
        result = evaluate(
            m,
            images,
            labels=labels if args.labels else None,
            methods=args.methods,
            metrics=args.metrics,
            progress=Bar(args.quiet),
            layer=args.layer,
            params=method_params(args.param),
            seed=args.seed,
            steps=args.steps,
            samples=args.samples,
            score=args.score,
        )
        if labels is not None and not args.labels:
            result.labels[:] = labels  # recorded, not used as targets
        result.settings.update(source=where, seconds=time.perf_counter() - started)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        csv_path = write_csv(result, out.with_suffix(".csv"))
        json_path = write_json(result, out.with_suffix(".json"))
    except (ValueError, OSError, argparse.ArgumentTypeError) as exc:  # ModelLoadError, ImageError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{m.name}: {len(images)} pictures ({where}), {len(result.methods)} methods -> {csv_path}, {json_path}")
    print(summary_table(result))
    for method, message in result.errors.items():
        print(f"{method}: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
