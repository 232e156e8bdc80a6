"""Feature visualisation by activation maximisation.

Erhan, Bengio, Courville & Vincent (2009), "Visualizing Higher-Layer Features of a Deep
Network", Univ. Montreal TR 1341; Simonyan, Vedaldi & Zisserman (2014), arXiv:1312.6034
(class models, on the logits); Yosinski, Clune, Nguyen, Fuchs & Lipson (2015),
"Understanding Neural Networks Through Deep Visualization", arXiv:1506.06579 (L2 decay,
blur, jitter); Mahendran & Vedaldi (2015) (total variation); Olah, Mordvintsev & Schubert
(2017), "Feature Visualization", Distill.

Gradient ascent on the picture itself, in pixel space (0..1), through the model's own
preprocessing, starting from grey plus a little seeded noise. The objective is the mean
activation of one channel of a layer (any depth, nested sub-models too: the graph walk of
``ModelHandle.run`` taps it) or one class's logit, minus the L2 and total-variation
penalties. tf-keras-vis' ``ActivationMaximization`` fails on nested models, hence this loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from scipy.ndimage import gaussian_filter

from interpret.progress import Progress
from models.handle import ModelHandle

MAX_STEPS = 1000


@dataclass
class Visualization:
    image: np.ndarray  # uint8 (H, W, C) at the model's input size
    objective: list[float]  # the target activation after each step
    start: float  # the target activation of the starting picture
    final: float
    params: dict = field(default_factory=dict)
    note: str = ""


def affine_preprocessing(m: ModelHandle) -> tuple[np.ndarray, np.ndarray] | None:
    """The model's preprocessing as ``x = pixels @ A + b`` (pixels 0..255), or None when it is not affine per pixel."""
    h, w, c = m.input_shape
    size = 4
    zero = m.preprocessing(np.zeros((1, size, size, c), np.float32))[0, 0, 0]
    a = np.zeros((c, c), np.float32)
    for i in range(c):
        probe = np.zeros((1, size, size, c), np.float32)
        probe[..., i] = 255.0
        a[i] = (m.preprocessing(probe)[0, 0, 0] - zero) / 255.0
    rng = np.random.default_rng(0)
    check = rng.uniform(0, 255, (1, size, size, c)).astype(np.float32)
    if not np.allclose(m.preprocessing(check), check @ a + zero, rtol=1e-4, atol=1e-3):
        return None
    return a, zero.astype(np.float32)


def total_variation(u: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference between neighbouring pixels of a (N, H, W, C) batch."""
    dy = tf.reduce_mean(tf.abs(u[:, 1:] - u[:, :-1]))
    dx = tf.reduce_mean(tf.abs(u[:, :, 1:] - u[:, :, :-1]))
    return dy + dx


def _step_fn(m: ModelHandle, layer: str | None, affine: tuple[np.ndarray, np.ndarray] | None):
    """A compiled (u, shift, unit, l2, tv, lr) -> (new u, target activation) step, cached on the handle."""
    h, w, c = m.input_shape
    if affine is not None:
        a, b = (tf.constant(v) for v in affine)
    else:
        a, b = tf.eye(c) * (1.0 / 255.0), tf.zeros(c)  # optimise the model's input in 0..1

    def build():
        @tf.function(
            input_signature=[
                tf.TensorSpec([1, h, w, c]),
                tf.TensorSpec([2], tf.int32),
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([], tf.float32),
                tf.TensorSpec([], tf.float32),
                tf.TensorSpec([], tf.float32),
            ]
        )
        def step(u, shift, unit, l2, tv, lr):
            with tf.GradientTape() as tape:
                tape.watch(u)
                moved = tf.roll(u, shift, axis=[1, 2])
                x = tf.tensordot(moved * 255.0, a, axes=[[3], [0]]) + b
                logits, tapped = m.run(x, taps=(layer,) if layer else ())
                if layer:
                    acts = tapped[layer]
                    axes = list(range(1, len(acts.shape) - 1))
                    chan = tf.gather(acts, unit, axis=-1)
                    target = tf.reduce_mean(chan, axis=axes) if axes else chan
                else:
                    target = tf.gather(logits, unit, axis=-1)
                target = tf.reduce_sum(target)
                loss = target - l2 * tf.reduce_mean(tf.square(u - 0.5)) - tv * total_variation(u)
            g = tape.gradient(loss, u)
            g = g / (tf.math.reduce_std(g) + 1e-8)
            return tf.clip_by_value(u + lr * g, 0.0, 1.0), target

        return step

    return m.cached(("feature_vis", layer, affine is not None), build)


def target_units(m: ModelHandle, layer: str | None) -> int:
    """How many channels (for a layer) or classes (for ``None``) can be maximised."""
    if layer is None:
        return m.num_classes
    try:
        out = m.layer(layer).output
    except KeyError:
        raise ValueError(f"No layer {layer!r} in {m.name}.") from None
    return int(out.shape[-1])


def maximize_activation(
    m: ModelHandle,
    layer: str | None = None,
    unit: int = 0,
    steps: int = 100,
    learning_rate: float = 0.05,
    l2: float = 0.01,
    tv: float = 0.05,
    jitter: int = 4,
    blur_every: int = 4,
    blur_sigma: float = 0.5,
    seed: int = 0,
    progress: Progress | None = None,
) -> Visualization:
    """Make a picture that drives ``layer``'s channel ``unit`` (or, with ``layer=None``, the logit of class ``unit``) up."""
    n_units = target_units(m, layer)
    if not 0 <= unit < n_units:
        what = f"{layer} has channels" if layer else f"{m.name} has classes"
        raise ValueError(f"Unit {unit} does not exist: {what} 0..{n_units - 1}.")
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps={steps} must be between 1 and {MAX_STEPS}.")
    if learning_rate <= 0 or l2 < 0 or tv < 0 or jitter < 0 or blur_sigma < 0 or blur_every < 0:
        raise ValueError("Learning rate must be positive; the regularisation settings must not be negative.")
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    h, w, c = m.input_shape
    rng = np.random.default_rng(seed)
    u = (0.5 + 0.1 * rng.standard_normal((1, h, w, c))).clip(0, 1).astype(np.float32)
    affine = affine_preprocessing(m)
    step = _step_fn(m, layer, affine)
    consts = [tf.constant(v, tf.float32) for v in (l2, tv, learning_rate)]
    unit_t = tf.constant(unit, tf.int32)
    history: list[float] = []
    start = None
    for i in range(steps):
        if i % 10 == 0:
            progress(i / steps, f"Step {i}/{steps}")
        shift = rng.integers(-jitter, jitter + 1, 2) if jitter else np.zeros(2, int)
        new_u, value = step(tf.constant(u), tf.constant(shift, tf.int32), unit_t, *consts)
        if start is None:
            start = float(value)  # measured on the (jittered) starting picture
        u = new_u.numpy()
        if blur_every and blur_sigma > 0 and (i + 1) % blur_every == 0:
            u = gaussian_filter(u, sigma=(0, blur_sigma, blur_sigma, 0)).astype(np.float32)
        history.append(float(value))
    _, final = step(tf.constant(u), tf.zeros(2, tf.int32), unit_t, consts[0], consts[1], tf.constant(0.0))
    progress(1.0, "Done")
    params = {
        "layer": layer,
        "unit": unit,
        "steps": steps,
        "learning_rate": learning_rate,
        "l2": l2,
        "tv": tv,
        "jitter": jitter,
        "blur_every": blur_every,
        "blur_sigma": blur_sigma,
        "seed": seed,
        "space": "pixels" if affine is not None else "model input",
    }
    picture = np.round(u[0] * 255.0).astype(np.uint8)
    note = ""
    if max(history + [float(final)]) == min(history + [float(final)]):
        note = "The target never changed: it is probably inactive (a ReLU at zero) on these pictures. Try another seed."
    return Visualization(picture, history[1:] + [float(final)], float(start), float(final), params, note)
