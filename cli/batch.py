"""``cnn-lens batch``: explanations (and faithfulness metrics) over a whole dataset, locally or on Ray.

    cnn-lens batch --model fashion-mnist-cnn --data fashion-mnist-test --methods gradcam,occlusion \\
        --metrics deletion,insertion --limit 2000 --out results/fashion
    cnn-lens batch --model my_model.keras --class-names classes.txt --data photos.zip \\
        --methods gradcam --out results/mine --engine ray --address auto

Writes ``OUT/results.parquet`` (one row per picture x method), the heatmaps in ``OUT/heatmaps/``
(one ``.npy`` per shard; ``serving.batch.read_heatmaps`` reads them for any rows) and
``OUT/summary.json``; a rerun resumes, skipping finished shards. See :mod:`serving.batch`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from interpret.__main__ import comma_list, method_params

NAME = "batch"
HELP = "explain a whole dataset (local or Ray) -> results.parquet + summary.json"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnn-lens batch", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="fashion-mnist-cnn", help="bundled/zoo name or path to a .keras file")
    p.add_argument("--class-names", help="class names for a .keras file: a text file (one per line) or JSON")
    p.add_argument("--preprocessing", default="0..1", help="input scaling of a .keras file: 0..1, -1..1 or 0..255")
    p.add_argument("--weights", default="imagenet", help="zoo weights: imagenet, or none for random weights")
    p.add_argument("--data", required=True, help="fashion-mnist-test, or a folder / .zip with one sub-folder per class")
    p.add_argument("--methods", type=comma_list, default=["gradcam"], help="comma-separated methods (default gradcam)")
    p.add_argument("--metrics", type=comma_list, default=[], help="comma-separated: deletion, insertion")
    p.add_argument("--steps", type=int, default=20, help="deletion/insertion steps (default 20)")
    p.add_argument("--target", choices=("predicted", "label"), default="predicted", help="class each map explains")
    p.add_argument("--layer", help="conv layer for CAM methods (default: the last one)")
    p.add_argument(
        "--param", action="append", default=[], metavar="METHOD.NAME=VALUE", help="a method parameter, repeatable"
    )
    p.add_argument("--limit", type=int, help="only the first N pictures")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--address", help="join this Ray cluster (e.g. auto, or HEAD:6379); default: start a local Ray")
    p.add_argument("--actors", type=int, help="Ray actors (default: one per GPU, else one)")
    p.add_argument("--batch-size", type=int, help="pictures per batch (default: the model's measured best)")
    p.add_argument("--shard-size", type=int, default=1024, help="pictures per resumable shard (default 1024)")
    p.add_argument("--restart", action="store_true", help="discard earlier shards in --out instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.address and args.engine != "ray":
        print("cnn-lens batch: --address needs --engine ray.", file=sys.stderr)
        return 2
    from interpret.batch import BatchSettings
    from models.class_names import parse_class_names
    from serving.batch import BatchJob, run_batch

    try:
        names = parse_class_names(Path(args.class_names).read_bytes()) if args.class_names else None
        settings = BatchSettings(
            methods=args.methods,
            metrics=args.metrics,
            target=args.target,
            layer=args.layer,
            params=method_params(args.param),
            steps=args.steps,
        )
        job = BatchJob(
            model=args.model,
            data=args.data,
            out=args.out,
            settings=settings,
            limit=args.limit,
            class_names=names,
            preprocessing=args.preprocessing,
            weights=None if args.weights.lower() == "none" else args.weights,
            shard_size=args.shard_size,
            batch_size=args.batch_size,
            restart=args.restart,
        )
        summary = run_batch(job, engine=args.engine, address=args.address, actors=args.actors, progress=not args.quiet)
    except (ValueError, OSError, argparse.ArgumentTypeError) as exc:  # bad model, data, settings: said plainly
        print(f"cnn-lens batch: {exc}", file=sys.stderr)
        return 1
    brief = {k: summary[k] for k in ("pictures", "explained", "accuracy", "labels_matched") if k in summary}
    brief["skipped"] = len(summary["skipped"])
    brief["run"] = summary["run"]
    print(json.dumps(brief, indent=2))
    print(f"wrote {args.out / 'results.parquet'} and {args.out / 'summary.json'}")
    return 0
