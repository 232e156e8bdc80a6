"""Every registered method, on every kind of model: shape, dtype, finite, deterministic.

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
        "nested_rgb": (nested, (19, 9, 3)),
        "functional_gray": (tiny.conv_softmax(input_shape=(12, 12, 1)), (17, 23)),
        "binary_sigmoid": (tiny.conv_softmax(classes=1, activation="sigmoid"), (15, 15, 3)),
    }


MODEL_KINDS = ("sequential_rgb", "functional_rgb", "nested_rgb", "functional_gray", "binary_sigmoid")


@pytest.fixture(scope="module")
def handles(tiny, handle_of):
    return {name: (handle_of(model), shape) for name, (model, shape) in _models(tiny).items()}


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("name", list(METHODS))
def test_method_gives_a_finite_deterministic_map_at_the_pictures_size(handles, name, kind):
    m, shape = handles[kind]
    picture = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    method = METHODS[name]
    params = quick_params(method)
    first = explain(m, picture, name, **params)
    second = explain(m, picture, name, **params)
    assert first.heatmap.shape == shape[:2]
    assert first.heatmap.dtype == np.float32
    assert np.isfinite(first.heatmap).all()
    np.testing.assert_array_equal(first.heatmap, second.heatmap)
    assert first.method == name and 0 <= first.target < m.num_classes
    if not method.signed:
        assert first.heatmap.min() >= 0.0


def test_every_method_is_described_for_the_ui():
    for name, method in METHODS.items():
        assert method.name == name and method.title and method.paper and method.summary
        assert method.kind in ("gradient", "cam", "perturbation")
        for p in method.params:
            assert p.default == p.check(p.default), f"{name}.{p.name}: default fails its own check"
            if p.kind == "int" and any(word in p.name for word in COUNT_WORDS):
                assert p.max is not None, f"{name}.{p.name} is a count and needs a cap"
