"""Every registered method against its hardware floor and against peer libraries, in one run.

    python -m benchmarks.bench_methods            # MobileNetV2 224x224 (weights=None), 5 repeats
    python -m benchmarks.bench_methods --quick    # fewer repeats and samples: a smoke run
    python -m benchmarks.bench_methods --methods occlusion,lime --repeats 3

What is measured (medians over ``--repeats`` timed calls, after one warm-up call whose
time is reported as "first" -- it includes tracing and compiling):

- each method through ``interpret.explain`` (what a user gets: preparing the picture
  included; the target is explicit, as in the UI, so no separate top-1 pass) and through the method function alone;
- its floor, timed in the same loop, alternating with the method so that both see the
  same load on a shared machine: N compiled passes of the logits model, N being what the
  method declares in the registry (``Method.passes`` for its parameters), forward+backward
  or forward only as it declares (``Method.backward``); one pass at batch 1, N passes at
  the best batch size, found first by timing a few. So: one forward+backward pass for
  the gradient and CAM methods (one forward pass for CAM), samples or steps
  forward+backward passes for SmoothGrad and Integrated Gradients, and forward passes for
  occlusion (patch positions + 1 for the picture), Score-CAM (1 for the activations +
  masked copies) and LIME (samples);
- peers doing the same work in the same process where importable: tf-keras-vis
  (Gradcam, GradcamPlusPlus, Scorecam with max_N, Saliency, SmoothGrad via
  smooth_samples), lime's stock ``LimeImageExplainer`` and xplique.

Weights are random (``weights=None``): the timings do not depend on them.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

TARGET = 1


@dataclass
class Row:
    name: str
    first: float = math.nan
    median: float = math.nan
    fn_median: float = math.nan
    floor: float = math.nan
    floor_what: str = ""
    ratio: float = math.nan  # median over repeats of (explain time / floor time measured next to it)
    fn_ratio: float = math.nan
    target: float = 1.5
    peers: dict[str, float] = field(default_factory=dict)  # peer -> median seconds
    peer_ratios: dict[str, float] = field(default_factory=dict)  # peer -> median of paired (ours / peer)
    note: str = ""


PeerJobs = dict[str, dict[str, Callable[[], object]]]  # method -> {peer: job}


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_of(fn: Callable[[], object], repeats: int) -> float:
    return statistics.median(timed(fn) for _ in range(repeats))


def quiet_tqdm() -> None:
    """lime, tf-keras-vis and Keras draw progress bars; keep the table readable."""
    import keras

    keras.utils.disable_interactive_logging()  # tf-keras-vis's Scorecam calls model.predict
    try:
        import tqdm

        tqdm.tqdm.__init__ = functools.partialmethod(tqdm.tqdm.__init__, disable=True)
    except ImportError:
        pass


# ---- floors -------------------------------------------------------------------------
class Floors:
    """Compiled forward and forward+backward passes of the logits model, at any batch size."""

    def __init__(self, m, x: np.ndarray) -> None:
        self.m = m
        self.x = x
        h, w, c = m.input_shape
        model = m.logits_model
        spec = [tf.TensorSpec([None, h, w, c], tf.float32)]
        self.forward = tf.function(lambda b: model(b, training=False), input_signature=spec)

        @tf.function(input_signature=spec)
        def forward_backward(b):
            with tf.GradientTape() as tape:
                tape.watch(b)
                score = model(b, training=False)[:, TARGET]
            return tape.gradient(score, b)

        self.forward_backward = forward_backward
        self.best_forward = 1
        self.best_backward = 1
        self._batches: dict[int, tf.Tensor] = {}

    def batch(self, n: int) -> tf.Tensor:
        if n not in self._batches:
            self._batches[n] = tf.constant(np.repeat(self.x, n, axis=0))
        return self._batches[n]

    def passes(self, n: int, batch_size: int, backward: bool) -> None:
        """n passes, batched at batch_size (the last batch partial), results brought back to NumPy."""
        fn = self.forward_backward if backward else self.forward
        for i in range(0, n, batch_size):
            fn(self.batch(min(batch_size, n - i))).numpy()

    def find_best(self, sizes: list[int], backward: bool, repeats: int) -> int:
        label = "forward+backward" if backward else "forward"
        best, best_rate = sizes[0], 0.0
        for size in sizes:
            self.passes(size, size, backward)  # warm-up / trace for this size
            t = median_of(lambda s=size: self.passes(s, s, backward), repeats)
            rate = size / t
            print(f"  {label:17s} batch {size:3d}: {rate:7.1f} images/s", flush=True)
            if rate > best_rate:
                best, best_rate = size, rate
        return best

    def floor_fn(self, n: int, backward: bool) -> Callable[[], None]:
        if n <= 1 and backward:
            return lambda: self.forward_backward(self.batch(1)).numpy()
        size = self.best_backward if backward else self.best_forward
        return lambda: self.passes(n, size, backward)

    def floor_timer(self, n: int, backward: bool, also: int | None = None) -> Callable[[], float]:
        """Seconds for the floor: n passes at the best batch size found first, and at ``also``
        (the batch size the library measured for itself) if different; the faster counts, so
        a noisy choice of "best" never makes the floor slower than what the method ran at."""
        if n <= 1 and backward:
            one = self.floor_fn(1, True)
            return lambda: timed(one)
        sizes = {self.best_backward if backward else self.best_forward}
        if also:
            sizes.add(also)
        runs = [lambda s=s: self.passes(n, s, backward) for s in sorted(sizes)]
        for run in runs:
            run()  # warm-up for these shapes
        return lambda: min(timed(run) for run in runs)


# ---- our methods --------------------------------------------------------------------
INPUT_SHAPE = (224, 224, 3)  # only to find which parameters are counts; the floors use the model's own shape


def count_params(method) -> list:
    """The integer parameters whose value sets how many passes the method makes (samples, steps, channels).

    Read from the registry: an int parameter with a positive default is one when doubling it
    raises ``method.passes``.
    """
    found = []
    for p in method.params:
        if p.kind != "int" or not p.default or p.default < 1:
            continue
        more = min(int(p.default) * 2, int(p.max)) if p.max is not None else int(p.default) * 2
        try:
            if method.pass_count({p.name: more}, INPUT_SHAPE) > method.pass_count({}, INPUT_SHAPE):
                found.append(p)
        except ValueError:
            continue
    return found


def method_params(name: str, quick: bool) -> dict:
    """The method's defaults; with --quick, its count parameters at a quarter (within their range)."""
    from interpret import METHODS

    if not quick:
        return {}
    return {p.name: max(int(p.min or 1), int(p.default) // 4) for p in count_params(METHODS[name])}


def floor_spec(method, params: dict, input_shape: tuple[int, int, int]) -> tuple[int, bool, str]:
    """(N, backward?, description) of a method's floor, from the registry: its passes, forward+backward or forward."""
    n = method.pass_count(params, input_shape)
    return n, bool(method.backward), f"{n} {'fwd+bwd' if method.backward else 'fwd'}"


def target_ratio(method, params: dict, input_shape: tuple[int, int, int]) -> float:
    """Issue 3's targets: 1.5x the floor for one-pass methods, 1.2x for methods making many passes."""
    return 1.2 if method.pass_count(params, input_shape) > 1 else 1.5


def bench_method(
    name: str, m, picture: np.ndarray, x: np.ndarray, floors: Floors, repeats: int, quick: bool, peers: dict
) -> Row:
    """Warm up, then per repeat: the floor, ours through explain, ours alone, each peer -- side by side."""
    from interpret import METHODS, explain
    from interpret.core import resolve_layer
    from interpret.progress import Progress

    method = METHODS[name]
    params = method_params(name, quick)
    row = Row(name, target=target_ratio(method, params, m.input_shape))
    layer = resolve_layer(m, None) if method.uses_layer else None
    full = method.check_params(params)

    def run_explain():
        return explain(m, picture, name, target=TARGET, **params)

    def run_fn():
        return method.fn(m, x, TARGET, layer=layer, progress=Progress(None), **full)

    try:
        row.first = timed(run_explain)
    except ValueError as err:
        row.note = f"not applicable: {err}"
        return row
    n, backward, row.floor_what = floor_spec(method, params, m.input_shape)
    from interpret.batching import best_batch_size

    floor = floors.floor_timer(n, backward, also=best_batch_size(m))
    live = {}
    for peer, job in peers.items():
        try:
            job()
            live[peer] = job
        except Exception as err:  # a peer failing is a finding to print, not a reason to stop
            print(f"  {peer} {name}: failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}", flush=True)
            row.note += f" {peer} failed ({type(err).__name__})."
    times: dict[str, list[float]] = {"floor": [], "explain": [], "fn": [], **{p: [] for p in live}}
    for _ in range(repeats):
        times["floor"].append(floor())
        times["explain"].append(timed(run_explain))
        times["fn"].append(timed(run_fn))
        for peer, job in live.items():
            times[peer].append(timed(job))
    med = {k: statistics.median(v) for k, v in times.items()}
    row.median, row.fn_median, row.floor = med["explain"], med["fn"], med["floor"]
    row.ratio = statistics.median(e / f for e, f in zip(times["explain"], times["floor"], strict=True))
    row.fn_ratio = statistics.median(e / f for e, f in zip(times["fn"], times["floor"], strict=True))
    for peer in live:
        row.peers[peer] = med[peer]
        row.peer_ratios[peer] = statistics.median(e / t for e, t in zip(times["explain"], times[peer], strict=True))
    peer_text = "".join(f", {p} {med[p]:.3f}s" for p in live)
    print(
        f"  {name}: first {row.first:.3f}s, median {row.median:.3f}s, floor {row.floor:.3f}s ({row.floor_what}), "
        f"ratio {row.ratio:.2f}x{peer_text}",
        flush=True,
    )
    return row


# ---- peers --------------------------------------------------------------------------
def peer_model(m, zoo_name: str):
    """A plain Keras model input -> logits with the handle's weights, built the way peers expect.

    Peers read ``layer.output`` of the model they are given, so the handle's own logits view
    (re-wired through nested models) does not suit them: rebuild the architecture with
    ``classifier_activation=None`` and copy the weights.
    """
    from models.zoo import ZOO

    if zoo_name not in ZOO:
        return None
    model = ZOO[zoo_name].build(weights=None, classifier_activation=None)
    model.set_weights(m.model.get_weights())
    return model


def tf_keras_vis_jobs(model, m, x: np.ndarray, quick: bool) -> PeerJobs:
    """tf-keras-vis doing what our gradcam, gradcam_plus_plus, saliency, smoothgrad and scorecam do."""
    try:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.scorecam import Scorecam
        from tf_keras_vis.utils.scores import CategoricalScore
    except ImportError:
        print("tf-keras-vis: not installed", flush=True)
        return {}
    from interpret import METHODS

    layer = m.last_conv_layer
    score = CategoricalScore([TARGET])
    gradcam, gradcam_pp = Gradcam(model, clone=False), GradcamPlusPlus(model, clone=False)
    saliency, scorecam = Saliency(model, clone=False), Scorecam(model, clone=False)

    def params(name: str) -> dict:
        return {**METHODS[name].defaults, **method_params(name, quick)} if name in METHODS else {}

    sg, sc = params("smoothgrad"), params("scorecam")
    samples, noise = int(sg.get("samples", 20)), float(sg.get("noise_level", 0.2))
    channels = int(sc.get("max_channels", 64))
    return {
        "gradcam": {"tf-keras-vis": lambda: gradcam(score, x, penultimate_layer=layer)},
        "gradcam_plus_plus": {"tf-keras-vis": lambda: gradcam_pp(score, x, penultimate_layer=layer)},
        "saliency": {"tf-keras-vis": lambda: saliency(score, x)},
        "smoothgrad": {"tf-keras-vis": lambda: saliency(score, x, smooth_samples=samples, smooth_noise=noise)},
        "scorecam": {"tf-keras-vis": lambda: scorecam(score, x, penultimate_layer=layer, max_N=channels)},
    }


def lime_jobs(m, x: np.ndarray, batch_size: int, quick: bool) -> PeerJobs:
    """Stock ``LimeImageExplainer`` (its own quickshift and per-superpixel loop), same samples and batch."""
    try:
        from lime import lime_image
    except ImportError:
        print("lime: not installed", flush=True)
        return {}
    from interpret import METHODS
    from interpret.batching import compiled_logits
    from interpret.lime_superpixels import visible_pixels

    fn = compiled_logits(m)
    n = int({**METHODS["lime"].defaults, **method_params("lime", quick)}["num_samples"])
    image = visible_pixels(m, x[0]).astype(np.float64)
    pre = m.preprocessing

    def classify(images):  # lime hands over pictures in 0..1; the model wants its own preprocessing
        return m.probabilities(fn(tf.constant(pre(np.asarray(images) * 255.0))).numpy())

    def job():
        explainer = lime_image.LimeImageExplainer(random_state=0)
        explainer.explain_instance(
            image, classify, labels=(TARGET,), top_labels=None, num_samples=n, batch_size=batch_size, random_seed=0
        )

    return {"lime": {"lime": job}}


def xplique_jobs(model, m, x: np.ndarray) -> tuple[PeerJobs, str]:
    try:
        import xplique  # noqa: F401
        from xplique.attributions import GradCAM, GuidedBackprop, Occlusion
        from xplique.attributions import Saliency as XSaliency
    except ImportError:
        return {}, (
            "xplique: not installed (xplique 2.0.2 requires tensorflow[and-cuda]<=2.20, scipy<=1.15.3, "
            "scikit-learn<=1.7.2 and scikit-image<=0.25.2: installing it would replace this venv's "
            "tensorflow-cpu 2.21 and downgrade the others)"
        )
    y = tf.one_hot([TARGET], m.num_classes)
    explainers = {
        "gradcam": GradCAM(model, conv_layer=m.last_conv_layer),
        "saliency": XSaliency(model),
        "guided_backprop": GuidedBackprop(model),
        "occlusion": Occlusion(model, patch_size=16, patch_stride=16, batch_size=64),
    }
    return {k: {"xplique": lambda e=e: e.explain(x, y)} for k, e in explainers.items()}, "xplique: measured"


def peer_jobs(m, zoo_name: str, x: np.ndarray, batch_size: int, quick: bool) -> tuple[PeerJobs, list[str]]:
    model = peer_model(m, zoo_name)
    if model is None:
        return {}, ["peers: skipped (they need a plain zoo model)"]
    jobs: PeerJobs = {}
    xq, note = xplique_jobs(model, m, x)
    for part in (tf_keras_vis_jobs(model, m, x, quick), lime_jobs(m, x, batch_size, quick), xq):
        for method, peers in part.items():
            jobs.setdefault(method, {}).update(peers)
    return jobs, [note]


# ---- report -------------------------------------------------------------------------
def fmt_s(t: float) -> str:
    return "-" if math.isnan(t) else f"{t:.3f}"


def print_table(rows: list[Row], peers: list[str]) -> None:
    head = ["method", "first s", "median s", "fn s", "floor s", "floor is", "ratio", "fn ratio", "target"]
    head += [f"vs {p}" for p in peers]
    lines = [head]
    for r in rows:
        ratio, fn_ratio = r.ratio, r.fn_ratio
        cells = [
            r.name,
            fmt_s(r.first),
            fmt_s(r.median),
            fmt_s(r.fn_median),
            fmt_s(r.floor),
            r.floor_what or "-",
            "-" if math.isnan(ratio) else f"{ratio:.2f}x",
            "-" if math.isnan(fn_ratio) else f"{fn_ratio:.2f}x",
            f"<={r.target}x",
        ]
        for p in peers:
            t = r.peers.get(p)
            # "0.25x" = ours takes a quarter of the peer's time
            cells.append("-" if t is None else f"{r.peer_ratios[p]:.2f}x ({t:.2f}s)")
        lines.append(cells)
        if r.note:
            lines.append([f"  {r.note}"] + [""] * (len(head) - 1))
    widths = [max(len(line[i]) for line in lines if not line[0].startswith("  ")) for i in range(len(head))]
    for line in lines:
        if line[0].startswith("  "):
            print(line[0])
            continue
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and samples (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 5, quick 2)")
    parser.add_argument("--methods", default="", help="comma-separated method names (default: all registered)")
    parser.add_argument("--model", default="mobilenet_v2", help="zoo model name (weights=None)")
    parser.add_argument("--no-peers", action="store_true", help="skip tf-keras-vis, lime and xplique")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    quiet_tqdm()

    import skimage.data

    from interpret import METHODS
    from models import load
    from models.device import default_batch_size, describe_device

    tf.random.set_seed(0)
    m = load(args.model, weights=None)
    picture = skimage.data.chelsea()  # a cat, 300x451: explain resizes it to the model's input
    x = m.prepare(picture)
    names = [n for n in args.methods.split(",") if n] or list(METHODS)
    unknown = set(names) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; registered: {', '.join(METHODS)}")

    print(
        f"{m.name} {m.input_shape}, device {describe_device()}, default batch {default_batch_size()}, "
        f"repeats {repeats}, TF {tf.__version__}, {os.cpu_count()} CPUs",
        flush=True,
    )
    floors = Floors(m, x)
    sizes = [8, 16, 32] if args.quick else [8, 16, 32, 64]
    floors.best_forward = floors.find_best(sizes, backward=False, repeats=repeats)
    floors.best_backward = floors.find_best(sizes[:3], backward=True, repeats=repeats)
    one = median_of(floors.floor_fn(1, True), repeats)
    print(
        f"best batch: forward {floors.best_forward}, forward+backward {floors.best_backward}; "
        f"one forward+backward at batch 1: {one * 1000:.1f} ms",
        flush=True,
    )

    jobs, notes = (
        ({}, ["peers: skipped (--no-peers)"])
        if args.no_peers
        else peer_jobs(m, args.model, x, floors.best_forward, args.quick)
    )
    rows: dict[str, Row] = {}
    for name in names:
        print(f"{name} ...", flush=True)
        rows[name] = bench_method(name, m, picture, x, floors, repeats, args.quick, jobs.get(name, {}))

    from interpret.batching import best_batch_size

    notes.append(f"batch size the perturbation methods picked for this model (measured once): {best_batch_size(m)}")
    peers = sorted({p for r in rows.values() for p in r.peers})
    print()
    print(
        f"{m.name} {m.input_shape[0]}x{m.input_shape[1]}, one image, median of {repeats}; "
        "ratio = median over rounds of (our time / the floor timed next to it); 'vs peer' = the same "
        "for our time / the peer's (below 1: we are faster); fn = the method function alone, without "
        "explain()'s preparing of the picture"
    )
    print_table(list(rows.values()), peers)
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
