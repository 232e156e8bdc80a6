"""The batch command against its hardware floor, and Ray against the local engine, in one run (ratios).

    python -m benchmarks.bench_batch            # about 4 minutes on a 2-core CPU
    python -m benchmarks.bench_batch --quick    # fewer pictures and repeats

1. **Grad-CAM, local engine**, over Fashion-MNIST test pictures (2,000 by default) with the
   bundled model: ``run_batch`` end to end, *data loading included* (pictures read from the
   dataset batch by batch, rows built, shards written as Parquet). Its floor is one batched,
   compiled forward+backward pass (d logit / d activations of the Grad-CAM layer) over
   prepared inputs already in memory, at the best of several batch sizes. Target: >= 0.8x.
2. **Occlusion, local engine, on a 224x224 model** (MobileNetV2, random weights: no download)
   over Fashion-MNIST pictures scaled to 224x224 RGB as they are read. Its floor is the
   method's passes per picture (from the registry) as batched forward passes at the best batch size.
3. **Ray with 1 and 2 actors against the local engine**, on a light job (Grad-CAM) and a heavy
   one (occlusion on Fashion-MNIST). Pictures per second of the engine (Ray: from ``ray.init``
   to the last row, actor start-up and model loading included) and in the steady state (over the
   second half of the pictures, start-up left out); the scaling efficiency of 2 actors (rate(2) / (2 x rate(1))); Ray's
   overhead at 1 actor (1 - ray / local). Target: overhead <= 30%.

Floors and engines run alternately, ``--repeats`` times, and the ratios are medians of pairs
measured next to each other (the machine is shared). The table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from interpret.batch import BatchSettings
from interpret.batching import batch_candidates
from interpret.registry import METHODS
from models import load
from models.datasets import load_dataset
from serving.batch import BatchJob, run_batch


def fwd_bwd_rate(m, layer: str, sizes: list[int], repeats: int = 3) -> tuple[float, int]:
    """Best pictures/s of one compiled forward+backward pass (Grad-CAM's gradients), inputs in memory."""
    h, w, c = m.input_shape

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, c])])
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits, tapped = m.run(x, taps=(layer,))
            score = tf.reduce_max(logits, axis=-1)
        return tape.gradient(score, tapped[layer])

    rng = np.random.default_rng(0)
    best = (0.0, sizes[0])
    for size in sizes:
        x = tf.constant(m.preprocessing(rng.integers(0, 256, (size, h, w, c)).astype(np.float32)))
        step(x).numpy()
        per = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(max(1, 1024 // size)):
                step(x).numpy()
            per.append(max(1, 1024 // size) * size / (time.perf_counter() - start))
        best = max(best, (max(per), size))
    return best


def forward_rate(m, sizes: list[int], repeats: int = 3) -> tuple[float, int]:
    """Best pictures/s of batched compiled forward passes, inputs in memory."""
    from interpret.batching import compiled_logits

    fn = compiled_logits(m)
    h, w, c = m.input_shape
    best = (0.0, sizes[0])
    for size in sizes:
        x = tf.constant(np.zeros((size, h, w, c), np.float32))
        fn(x).numpy()
        per = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x).numpy()
            per.append(size / (time.perf_counter() - start))
        best = max(best, (max(per), size))
    return best


def engine_rate(model: str, methods: list[str], limit: int, engine: str = "local", actors: int | None = None,
                params: dict | None = None, weights: str | None = "imagenet", handle=None) -> dict:  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        job = BatchJob(model, "fashion-mnist-test", out, BatchSettings(methods, params=params or {}), limit=limit,
                       weights=weights, shard_size=512)  # fmt: skip
        start = time.perf_counter()
        summary = run_batch(job, engine=engine, actors=actors, progress=False, handle=handle)
        run = dict(summary["run"])
        run["wall_s"] = time.perf_counter() - start
        return run
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_batch", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--pictures", type=int, default=2000, help="Grad-CAM pictures (default 2000)")
    p.add_argument("--occlusion-pictures", type=int, default=6, help="occlusion pictures on the 224 model")
    p.add_argument(
        "--ray-occlusion-pictures", type=int, default=1200, help="occlusion pictures for the Ray rows (about 1 min)"
    )
    p.add_argument("--ray-pictures", type=int, default=10_000, help="Grad-CAM pictures for the Ray rows")
    p.add_argument("--sections", default="gradcam,occlusion,ray", help="which parts to run (comma-separated)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.pictures, args.occlusion_pictures, args.ray_occlusion_pictures, args.repeats = 1000, 3, 120, 2
        args.ray_pictures = 2000
    rows = []
    sections = set(args.sections.split(",")) - ({"ray"} if args.no_ray else set())
    load_dataset("fashion-mnist-test")  # warm the page cache: every run then reads the same way

    m = load("fashion-mnist-cnn")
    if "gradcam" in sections:
        gradcam_rows(args, m, rows)
    if "occlusion" in sections:
        occlusion_rows(args, rows)
    if "ray" in sections:
        ray_rows(args, m, rows)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def gradcam_rows(args, m, rows: list) -> None:
    """1. Grad-CAM, local engine vs the forward+backward floor."""
    sizes = sorted({*batch_candidates(), *(c * 4 for c in batch_candidates()), 256, 512})
    engine_rate("fashion-mnist-cnn", ["gradcam"], 64, handle=m)  # warm: compiled functions, batch size
    ratios, engines, floors = [], [], []
    for _ in range(args.repeats):
        floor, floor_size = fwd_bwd_rate(m, m.last_conv_layer, sizes)
        run = engine_rate("fashion-mnist-cnn", ["gradcam"], args.pictures, handle=m)
        floors.append(floor)
        engines.append(run["pictures_per_second"])
        ratios.append(run["pictures_per_second"] / floor)
    rows.append(
        {
            "what": f"Grad-CAM, local, {args.pictures} Fashion-MNIST (data loading included)",
            "pictures_per_s": statistics.median(engines),
            "floor_per_s": statistics.median(floors),
            "floor": f"fwd+bwd, batch {floor_size}",
            "ratio": statistics.median(ratios),
            "target": ">= 0.8",
            "batch": run["batch_size"],
        }
    )
    print(json.dumps(rows[-1]), flush=True)


def occlusion_rows(args, rows: list) -> None:
    """2. Occlusion on a 224x224 model vs batched forward passes."""
    big = load("mobilenet_v2", weights=None)
    passes = METHODS["occlusion"].passes(METHODS["occlusion"].check_params({}), big.input_shape)
    engine_rate("mobilenet_v2", ["occlusion"], 1, weights=None, handle=big)  # warm
    ratios, engines, floors = [], [], []
    for _ in range(max(1, args.repeats - 1)):
        rate, size = forward_rate(big, batch_candidates() + [64])
        run = engine_rate("mobilenet_v2", ["occlusion"], args.occlusion_pictures, weights=None, handle=big)
        floors.append(rate / passes)
        engines.append(run["pictures_per_second"])
        ratios.append(engines[-1] / floors[-1])
    rows.append(
        {
            "what": f"Occlusion, local, MobileNetV2 224x224, {args.occlusion_pictures} pictures ({passes} passes each)",
            "pictures_per_s": statistics.median(engines),
            "floor_per_s": statistics.median(floors),
            "floor": f"{passes} fwd passes, batch {size}",
            "ratio": statistics.median(ratios),
            "target": "-",
            "batch": run["batch_size"],
        }
    )
    print(json.dumps(rows[-1]), flush=True)


def ray_rows(args, m, rows: list) -> None:
    """3. Ray with 1 and 2 actors vs the local engine."""
    jobs = (
        ("Grad-CAM", ["gradcam"], args.ray_pictures, None),
        ("Occlusion", ["occlusion"], args.ray_occlusion_pictures, None),
    )
    for title, methods, n, params in jobs:
        engine_rate("fashion-mnist-cnn", methods, 16, params=params, handle=m)  # warm
        local = engine_rate("fashion-mnist-cnn", methods, n, params=params, handle=m)
        one = engine_rate("fashion-mnist-cnn", methods, n, "ray", 1, params=params)
        two = engine_rate("fashion-mnist-cnn", methods, n, "ray", 2, params=params)
        for label, r in (("local", local), ("ray, 1 actor", one), ("ray, 2 actors", two)):
            steady = r.get("ray_steady_pictures_per_second")
            row = {
                "what": f"{title}, {label}, {n} Fashion-MNIST",
                "pictures_per_s": r["pictures_per_second"],
                "steady_per_s": steady,
                "first_rows_s": r.get("ray_first_rows_seconds"),
                "vs_local": r["pictures_per_second"] / local["pictures_per_second"],
                "steady_vs_local": steady / local["pictures_per_second"] if steady else None,
            }
            if label == "ray, 2 actors":
                row["scaling_efficiency"] = r["pictures_per_second"] / (2 * one["pictures_per_second"])
                if steady and one.get("ray_steady_pictures_per_second"):
                    row["steady_scaling_efficiency"] = steady / (2 * one["ray_steady_pictures_per_second"])
            if label == "ray, 1 actor":
                row["overhead"] = 1 - row["vs_local"]
                row["steady_overhead"] = 1 - row["steady_vs_local"] if steady else None
                row["target"] = "overhead <= 0.30"
            rows.append(row)
            print(json.dumps(row), flush=True)


def print_table(rows: list) -> None:
    print()
    print(f"{'what':<78} {'pics/s':>9} {'floor/s':>9} {'ratio':>6}  notes")
    for r in rows:
        notes = ", ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in r.items()
            if k not in ("what", "pictures_per_s", "floor_per_s", "ratio") and v is not None
        )
        floor = f"{r['floor_per_s']:9.1f}" if "floor_per_s" in r else " " * 9
        ratio = f"{r['ratio']:6.2f}" if "ratio" in r else " " * 6
        print(f"{r['what']:<78} {r['pictures_per_s']:9.1f} {floor} {ratio}  {notes}")


if __name__ == "__main__":
    main()
