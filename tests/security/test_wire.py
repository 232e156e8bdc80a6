"""The worker's wire format: JSON + NPZ round-trips the result types pages use, and never unpickles."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from interpret.explanation import Explanation
from serving import wire


def test_explanation_round_trips_with_arrays_and_extras() -> None:
    rng = np.random.default_rng(0)
    e = Explanation(
        heatmap=rng.random((5, 7), dtype=np.float32),
        method="lime",
        target=3,
        params={"samples": 200, "segmenter": "slic", "ratio": 0.5},
        extras={"segments": rng.integers(0, 9, (5, 7)), "scores": (1.5, float("nan")), "rgb": rng.random((5, 7, 3))},
        layer="base/conv_1",
        target_name="cat",
        score=np.float32(2.25),
    )
    back = wire.decode(wire.encode(e))
    assert isinstance(back, Explanation)
    np.testing.assert_array_equal(back.heatmap, e.heatmap)
    assert back.heatmap.dtype == np.float32
    np.testing.assert_array_equal(back.extras["segments"], e.extras["segments"])
    assert back.extras["scores"][0] == 1.5 and math.isnan(back.extras["scores"][1])
    assert back.params == e.params and back.layer == "base/conv_1" and back.score == 2.25


def test_plain_trees_round_trip() -> None:
    value = {
        "top": [(1, "b", np.float32(0.5)), (0, "a", 0.25)],
        7: {"nested": (np.arange(3, dtype=np.int64), None, True)},
        (1, 2): np.array(["x", "yy"]),
        "empty": np.zeros((0, 4), np.uint8),
        "inf": -math.inf,
    }
    back = wire.decode(wire.encode(value))
    assert back["top"] == [(1, "b", 0.5), (0, "a", 0.25)]
    assert isinstance(back["top"][0], tuple)
    np.testing.assert_array_equal(back[7]["nested"][0], [0, 1, 2])
    assert back[7]["nested"][1:] == (None, True)
    assert list(back[(1, 2)]) == ["x", "yy"]
    assert back["empty"].shape == (0, 4) and back["inf"] == -math.inf


def test_unsendable_values_are_refused() -> None:
    with pytest.raises(wire.WireError, match="dtype object"):
        wire.encode({"a": np.array([object()])})
    with pytest.raises(wire.WireError, match="function"):
        wire.encode([print])


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_decode_never_unpickles() -> None:
    """A pickled object array in the NPZ is refused, so a worker cannot send a pickle."""
    tree = np.frombuffer(json.dumps({"__nd__": "a0"}).encode(), np.uint8)
    hostile = _npz(__json__=tree, a0=np.array([{"x": 1}], dtype=object))
    with pytest.raises(wire.WireError, match="Malformed"):
        wire.decode(hostile)


@dataclass
class Local:
    x: int


def test_decode_builds_only_known_project_dataclasses() -> None:
    def message(ref: str) -> bytes:
        tree = {"__dc__": ref, "fields": {}}
        return _npz(__json__=np.frombuffer(json.dumps(tree).encode(), np.uint8))

    for ref in ("os:system", "subprocess:Popen", "interpret.not_imported_module:X", "models.errors:ModelLoadError"):
        with pytest.raises(wire.WireError):
            wire.decode(message(ref))
    with pytest.raises(wire.WireError, match="accepts"):
        wire.decode(wire.encode(Local(1)))  # a test module is not one of the project packages
    with pytest.raises(wire.WireError):
        wire.decode(b"not an npz")
