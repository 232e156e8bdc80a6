"""Every registered method, on every kind of model (RGB, grayscale, binary sigmoid, nested, logits):
shape, dtype, finite, deterministic, not blank, depends on the picture, honours the target.

The method list is read from ``METHODS`` when the tests are collected, so a newly
registered method is covered without touching this file. Count-like parameters
(samples, steps, channels) are lowered so that the whole file stays quick.
"""

from __future__ import annotations

import numpy as np
import pytest

import interpret  # noqa: F401  (registers every method)
from interpret import METHODS, explain
from interpret.registry import Method

COUNT_WORDS = ("sample", "steps", "channels")


def quick_params(method: Method) -> dict:
    """Defaults, with count-like integer parameters lowered to at most 10 (within the method's range)."""
    params = {}
    for p in method.params:
        if p.kind == "int" and any(word in p.name for word in COUNT_WORDS):
            params[p.name] = int(max(p.min or 1, min(p.default, 10)))
    return params


def _models(tiny):
    nested, _base, _head = tiny.nested_sequential()
    return {
        "sequential_rgb": (tiny.conv_sequential(), (17, 23, 3)),
        "functional_rgb": (tiny.conv_softmax(), (17, 23, 3)),
        "linear_rgb": (tiny.conv_sequential(activation=None), (16, 16, 3)),  # logits straight out
        "nested_rgb": (nested, (19, 9, 3)),
        "functional_gray": (tiny.conv_softmax(input_shape=(12, 12, 1)), (17, 23)),
        "binary_sigmoid": (tiny.conv_softmax(classes=1, activation="sigmoid"), (15, 15, 3)),
        "binary_gray": (tiny.conv_sequential(input_shape=(12, 12, 1), classes=1, activation="sigmoid"), (15, 15, 1)),
    }


MODEL_KINDS = (
    "sequential_rgb",
    "functional_rgb",
    "linear_rgb",
    "nested_rgb",
    "functional_gray",
    "binary_sigmoid",
    "binary_gray",
)


@pytest.fixture(scope="module")
def handles(tiny, handle_of):
    return {name: (handle_of(model), shape) for name, (model, shape) in _models(tiny).items()}


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("name", list(METHODS))
def test_method_on_every_kind_of_model(handles, name, kind):
    """RGB, grayscale and binary-sigmoid models, plain, nested and logit-output: one contract for every method.

    A finite float32 map at the picture's own size, the same on a second call, not blank for
    the predicted class and changing with the picture; non-negative unless the method is
    signed; an explicit target (both classes of a binary model) is honoured and scored.
    """
    m, shape = handles[kind]
    picture = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    other = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    method = METHODS[name]
    params = quick_params(method)
    logits = m.logits(picture)[0]

    first = explain(m, picture, name, **params)  # target None: the top-1 class
    second = explain(m, picture, name, **params)
    assert first.method == name and first.target == int(np.argmax(logits))
    assert first.heatmap.shape == shape[:2]
    assert first.heatmap.dtype == np.float32
    assert np.isfinite(first.heatmap).all()
    np.testing.assert_array_equal(first.heatmap, second.heatmap)
    assert np.abs(first.heatmap).max() > 0, f"{name} on {kind}: a blank map for the predicted class"
    if not method.signed:
        assert first.heatmap.min() >= 0.0
    elsewhere = explain(m, other, name, target=first.target, **params)
    assert not np.array_equal(first.heatmap, elsewhere.heatmap), f"{name} on {kind}: the map ignores the picture"
    if "gradients" in first.extras:
        assert first.extras["gradients"].shape == m.input_shape
    if method.uses_layer:
        assert first.layer == m.last_conv_layer

    for t in (0, 1):  # every model here has at least two classes (a sigmoid unit is shown as two)
        e = explain(m, picture, name, target=t, **params)
        assert e.target == t and e.target_name == m.class_names[t]
        assert e.score == pytest.approx(float(logits[t]), rel=1e-4, abs=1e-5)
        assert e.heatmap.shape == shape[:2] and np.isfinite(e.heatmap).all()
        if not method.signed:
            assert e.heatmap.min() >= 0.0


def test_every_method_is_described_for_the_ui():
    for name, method in METHODS.items():
        assert method.name == name and method.title and method.paper and method.summary
        assert method.kind in ("gradient", "cam", "perturbation")
        for p in method.params:
            assert p.default == p.check(p.default), f"{name}.{p.name}: default fails its own check"
            if p.kind == "int" and any(word in p.name for word in COUNT_WORDS):
                assert p.max is not None, f"{name}.{p.name} is a count and needs a cap"
