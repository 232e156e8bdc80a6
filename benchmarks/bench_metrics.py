"""The faithfulness metrics against their floor, on MobileNetV2 at 224x224 (weights=None), in one run.

    python -m benchmarks.bench_metrics              # 5 repeats of the curves, 3 of the sanity check, 2 of the table
    python -m benchmarks.bench_metrics --quick      # fewer repeats, the table with 4 methods: a smoke run

What is measured (medians; "first" is the first call, with its tracing and compiling):

1. **Deletion + insertion** of one Grad-CAM map, 20 steps each, against its floor: 42 forward
   passes of the compiled logits model batched at the best batch size (the faster of the
   benchmark's own best and the library's measured choice), timed alternately with the
   metric so both see the same load. Both ways: one stream (``deletion_insertion``, what the
   Evaluate page and ``evaluate`` do) and two calls (``deletion`` then ``insertion``).
   Target: <= 1.2x the floor.
2. **The whole metrics table** on one picture: all 11 registered methods plus the random and
   edge baselines, deletion, insertion, Average Drop / Increase in Confidence and MuFidelity
   (``evaluate_picture`` with its defaults). Reported: total, the share spent explaining and
   scoring, and the scoring against its own floor (as many batched forward passes as rows).
3. **The cascading sanity check** of Grad-CAM, block by block (``sanity_check``). Target: <= 5 s.

Weights are random (``weights=None``): the timings do not depend on them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

TARGET = 1


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def picture() -> np.ndarray:
    """A natural photo at the model's size: scikit-image's cat."""
    import cv2
    from skimage import data

    return cv2.resize(data.chelsea(), (224, 224), interpolation=cv2.INTER_AREA)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)

    import keras

    keras.utils.disable_interactive_logging()
    from benchmarks.bench_methods import Floors
    from interpret import METHODS, explain
    from interpret.batching import batch_candidates, best_batch_size
    from interpret.metrics import deletion, deletion_insertion, evaluate_picture, insertion, sanity_check
    from interpret.metrics.sanity import randomisation_blocks
    from models import load
    from models.device import describe_device

    m = load("mobilenet_v2", weights=None)
    image = picture()
    x = m.prepare(image)
    print(f"MobileNetV2 224x224, weights=None, device {describe_device()}; best batch size (library): ", end="")
    library_batch = best_batch_size(m)
    print(library_batch, flush=True)
    heat = explain(m, image, "gradcam", target=TARGET).heatmap

    # ---- 1. deletion + insertion against 42 forward passes
    floors = Floors(m, x)
    floors.best_forward = floors.find_best(batch_candidates(), backward=False, repeats=3)
    floor = floors.floor_timer(42, backward=False, also=library_batch)
    one_stream = lambda: deletion_insertion(m, image, heat, target=TARGET, steps=20)  # noqa: E731

    def two_calls():
        deletion(m, image, heat, target=TARGET, steps=20)
        insertion(m, image, heat, target=TARGET, steps=20)

    rows = []
    for label, fn in (("one stream (deletion_insertion)", one_stream), ("two calls (deletion, insertion)", two_calls)):
        first = timed(fn)
        pairs = [(timed(fn), floor()) for _ in range(repeats)]
        rows.append(
            (
                label,
                first,
                statistics.median(a for a, _ in pairs),
                statistics.median(b for _, b in pairs),
                statistics.median(a / b for a, b in pairs),
            )
        )
    print("\n1. Deletion + insertion of one Grad-CAM map, 20 steps each (42 copies); target <= 1.2x the floor")
    print(f"   {'':34s} {'first':>8s} {'median':>8s} {'floor':>8s} {'ratio':>7s}")
    for label, first, med, flo, ratio in rows:
        print(f"   {label:34s} {first:8.3f} {med:8.3f} {flo:8.3f} {ratio:6.2f}x")
    print("   floor: 42 forward passes of the compiled logits model at the best batch size")

    # ---- 2. the whole metrics table on one picture
    methods = None if not args.quick else ["saliency", "gradcam", "occlusion", "guided_backprop", "random", "edge"]
    table_repeats = 1 if args.quick else 2
    runs = []
    for _ in range(table_repeats + 1):
        started = time.perf_counter()
        r = evaluate_picture(m, image, methods, target=TARGET)
        runs.append((time.perf_counter() - started, r))
    first_total = runs[0][0]
    total, r = sorted(runs[1:], key=lambda t: t[0])[len(runs[1:]) // 2]
    explaining = sum(r.explain_seconds.values())
    n_rows = len(r.methods) * (2 * 21 + 1) + 201
    table_floor = statistics.median(timed(lambda: floors.passes(n_rows, floors.best_forward, False)) for _ in range(2))
    print(
        f"\n2. The metrics table: {len(r.methods)} maps ({len(r.methods) - 2} methods + random + edge) on one picture"
    )
    print(f"   total {total:.2f} s (first call {first_total:.2f} s, with tracing)")
    print(
        f"   explaining {explaining:.2f} s ({explaining / total:.0%}), scoring {r.score_seconds:.2f} s ({r.score_seconds / total:.0%})"
    )
    print(
        f"   scoring: {n_rows} perturbed copies in one stream; its floor ({n_rows} forward passes) {table_floor:.2f} s, "
        f"ratio {r.score_seconds / table_floor:.2f}x"
    )
    print("   explaining, per method (s): " + ", ".join(f"{k} {v:.2f}" for k, v in r.explain_seconds.items()))
    if r.errors:
        print("   not applicable: " + "; ".join(f"{k}: {v}" for k, v in r.errors.items()))
    del METHODS

    # ---- 3. the cascading sanity check of Grad-CAM, block by block
    blocks = randomisation_blocks(m.model)
    times = [
        timed(lambda: sanity_check(m, image, "gradcam", target=TARGET)) for _ in range(1 + max(1, repeats // 2 + 1))
    ]
    print(f"\n3. Cascading sanity check, Grad-CAM, {len(blocks)} blocks; target <= 5 s")
    print(
        f"   first {times[0]:.2f} s (cloning the model, tracing on the copy), then median {statistics.median(times[1:]):.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
