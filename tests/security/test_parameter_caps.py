"""Every registered method caps its counts (samples, masks, channels, steps), and explain refuses values past them.

The methods are read from ``interpret.METHODS`` at run time, so a method added later is checked too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from interpret import METHODS, explain

# Integer parameters that are not a count of work (no cap needed beyond their range).
NOT_COUNTS = {"seed"}
# The largest cap any count may have: past it one request could hold the server for minutes.
CEILING = 10_000

INT_PARAMS = [(m.name, p) for m in METHODS.values() for p in m.params if p.kind == "int"]


@pytest.fixture(scope="module")
def handle(tiny, handle_of):
    return handle_of(tiny.conv_softmax(), class_names=["a", "b", "c"])


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)


def test_the_registry_has_count_parameters_to_check() -> None:
    assert len(INT_PARAMS) >= 1


@pytest.mark.parametrize(("method", "param"), INT_PARAMS, ids=[f"{m}.{p.name}" for m, p in INT_PARAMS])
def test_every_count_has_a_cap(method: str, param) -> None:
    assert param.min is not None, f"{method}.{param.name} has no minimum"
    assert param.max is not None, f"{method}.{param.name} has no maximum"
    if param.name not in NOT_COUNTS:
        assert param.max <= CEILING, f"{method}.{param.name} allows {param.max}"


@pytest.mark.parametrize(("method", "param"), INT_PARAMS, ids=[f"{m}.{p.name}" for m, p in INT_PARAMS])
def test_explain_refuses_a_count_past_its_cap(handle, method: str, param) -> None:
    if param.max is None:
        pytest.fail(f"{method}.{param.name} has no maximum")
    with pytest.raises(ValueError, match=param.name):
        explain(handle, _image(), method=method, **{param.name: int(param.max) + 1})
    with pytest.raises(ValueError, match=param.name):
        explain(handle, _image(), method=method, **{param.name: int(param.min) - 1})
    with pytest.raises(ValueError, match="whole number"):
        explain(handle, _image(), method=method, **{param.name: param.default + 0.5})


FLOAT_PARAMS = [(m.name, p) for m in METHODS.values() for p in m.params if p.kind == "float"]


@pytest.mark.parametrize(("method", "param"), FLOAT_PARAMS, ids=[f"{m}.{p.name}" for m, p in FLOAT_PARAMS])
def test_explain_refuses_impossible_floats(handle, method: str, param) -> None:
    for value in (math.nan, "lots"):
        with pytest.raises(ValueError, match=param.name):
            explain(handle, _image(), method=method, **{param.name: value})
    if param.max is not None:
        with pytest.raises(ValueError, match=param.name):
            explain(handle, _image(), method=method, **{param.name: param.max * 2 + 1})


def test_unknown_parameters_are_refused(handle) -> None:
    for name in METHODS:
        with pytest.raises(ValueError, match="has no parameter"):
            explain(handle, _image(), method=name, samples_per_pixel=10**9)


@pytest.mark.skipif("occlusion" not in METHODS, reason="occlusion is not registered")
def test_occlusion_caps_the_number_of_masks_it_derives(tiny, handle_of) -> None:
    """patch=1, stride=1 on a 96x96 input would be 9216 masks: refused with a message, not run."""
    big = handle_of(tiny.conv_softmax(input_shape=(96, 96, 3)), class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="stride"):
        explain(big, _image(), method="occlusion", patch=1, stride=1)
