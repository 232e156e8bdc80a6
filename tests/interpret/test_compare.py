"""The compare grid: shared passes give exactly what ``explain`` gives, exports hold everything."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from interpret import METHODS, explain
from interpret.compare import CompareGrid, Panel, compare, grid_png, grid_zip, panel_scales

SHARED = ["gradcam", "guided_backprop", "guided_gradcam", "saliency", "occlusion"]


@pytest.fixture(scope="module")
def nested(tiny, handle_of):
    model, _, _ = tiny.nested_sequential(classes=4)
    return handle_of(model, class_names=["cat", "dog", "fox", "owl"])


def test_each_panel_equals_explain(nested, rng):
    image = rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)  # not the model's size: maps come back at 20x16
    others = [name for name in METHODS if name not in SHARED and name != "lime"][:1]
    methods = SHARED + others
    grid = compare(nested, image, methods, targets=[2, 0], layer="base/conv1", params={"occlusion": {"patch": 3}})
    assert grid.targets == [2, 0] and grid.target_names == ["fox", "cat"]
    assert len(grid.panels) == len(methods) * 2
    for p in grid.panels:
        kwargs = {"patch": 3} if p.method == "occlusion" else {}
        e = explain(nested, image, p.method, target=p.target, layer="base/conv1", **kwargs)
        assert p.heatmap.shape == (20, 16)
        np.testing.assert_allclose(p.heatmap, e.heatmap, rtol=1e-4, atol=1e-6 * (np.abs(e.heatmap).max() + 1e-12))
        assert p.score == pytest.approx(e.score, rel=1e-5)
    assert grid.panel("gradcam", 2).shared.startswith("one batched pass")
    assert grid.panel("occlusion", 0).shared.startswith("one set of occluded passes")


def test_default_targets_are_the_top_two(nested, rng):
    image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    grid = compare(nested, image, ["gradcam"])
    logits = nested.logits(image)[0]
    assert grid.targets == list(np.argsort(-logits)[:2])


def test_bad_requests(nested, rng):
    image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="at least one method"):
        compare(nested, image, [])
    with pytest.raises(ValueError, match="Unknown method nope"):
        compare(nested, image, ["nope"])
    with pytest.raises(ValueError, match="out of range"):
        compare(nested, image, ["gradcam"], targets=[9])


def small_grid() -> CompareGrid:
    def panel(method, target, heat, signed):
        return Panel(method, method.title(), target, f"c{target}", np.array(heat, np.float32), signed, {"k": 1})

    return CompareGrid(
        ["a", "b"],
        [0, 1],
        ["c0", "c1"],
        [
            panel("a", 0, [[0, 2]], False),
            panel("a", 1, [[0, 4]], False),
            panel("b", 0, [[-3, 1]], True),
            panel("b", 1, [[0, 1]], True),
        ],
    )


def test_shared_scale_is_per_method():
    grid = small_grid()
    assert set(panel_scales(grid, shared=False).values()) == {None}
    shared = panel_scales(grid, shared=True)
    assert shared[("a", 0)] == shared[("a", 1)] == 4.0
    assert shared[("b", 0)] == shared[("b", 1)] == 3.0  # signed: largest magnitude


def test_zip_holds_every_heatmap_and_its_parameters():
    grid = small_grid()
    data = grid_zip(grid, model_name="tiny", image_label="cat.png")
    z = zipfile.ZipFile(io.BytesIO(data))
    record = json.loads(z.read("grid.json"))
    assert record["model"] == "tiny" and record["targets"] == [0, 1]
    assert len(record["panels"]) == 4
    for entry in record["panels"]:
        heat = np.load(io.BytesIO(z.read(entry["file"])))["heatmap"]
        np.testing.assert_array_equal(heat, grid.panel(entry["method"], entry["target"]).heatmap)
        assert entry["params"] == {"k": 1}


def test_png_has_a_row_per_method(nested, rng):
    image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    grid = compare(nested, image, ["gradcam", "saliency", "guided_backprop"], targets=[0, 1])
    png = Image.open(io.BytesIO(grid_png(grid, image, shared=True, dpi=50)))
    width, height = png.size
    assert png.format == "PNG"
    assert height == pytest.approx(3 * 2.6 * 50, abs=2) and width == pytest.approx(3 * 2.6 * 50, abs=2)
