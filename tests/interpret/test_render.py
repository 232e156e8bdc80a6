"""The renderer: overlay maths on tiny arrays, display pictures and their encoding, and the compare grid's export."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from interpret import METHODS
from interpret.render import (
    SIGNED_CMAP,
    colorize,
    default_cmap,
    display_format,
    display_picture,
    encode,
    grid_figure,
    grid_panel,
    grid_png,
    method_overlay,
    normalize,
    overlay,
    panel_scales,
    signed_overlay,
)


def test_normalize_min_max():
    np.testing.assert_allclose(normalize(np.array([[2.0, 4.0], [6.0, 10.0]])), [[0, 0.25], [0.5, 1]])


def test_normalize_with_vmax_starts_at_zero_and_clips():
    np.testing.assert_allclose(normalize(np.array([1.0, 2.0, 8.0]), vmax=4.0), [0.25, 0.5, 1.0])


def test_normalize_signed_puts_zero_at_half():
    np.testing.assert_allclose(normalize(np.array([-2.0, 0.0, 1.0]), signed=True), [0.0, 0.5, 0.75])
    np.testing.assert_allclose(normalize(np.array([-1.0, 1.0, 4.0]), signed=True, vmax=2.0), [0.25, 0.75, 1.0])


def test_normalize_constant_and_non_finite_maps():
    np.testing.assert_array_equal(normalize(np.full((2, 3), 5.0)), np.zeros((2, 3)))
    np.testing.assert_array_equal(normalize(np.zeros((2, 2)), signed=True), np.full((2, 2), 0.5))
    out = normalize(np.array([np.nan, 1.0, 3.0]))
    np.testing.assert_allclose(out, [0.0, 1 / 3, 1.0])
    assert out.dtype == np.float32


def test_colorize_gray_and_jet_ends():
    gray = colorize(np.array([[0.0, 1.0]]), "gray")
    assert gray.dtype == np.uint8 and gray.shape == (1, 2, 3)
    np.testing.assert_array_equal(gray, [[[0, 0, 0], [255, 255, 255]]])
    jet = colorize(np.array([0.0, 1.0]), "jet")
    assert jet[0, 2] > 100 and jet[0, 0] == 0  # low = blue
    assert jet[1, 0] > 100 and jet[1, 2] == 0  # high = red
    ramp = colorize(np.linspace(0, 1, 11), "gray")[:, 0].astype(int)
    assert np.all(np.diff(ramp) > 0)


def test_colorize_unknown_colormap_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown colormap 'rainbowz'"):
        colorize(np.zeros((2, 2)), "rainbowz")


def test_overlay_blends_by_alpha():
    image = np.full((2, 2, 3), 100, np.uint8)
    heat = np.array([[0.0, 1.0], [1.0, 1.0]])  # normalised: 0 and 1 -> gray 0 and 255
    out = overlay(image, heat, alpha=0.25, cmap="gray")
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 0], [75, 75, 75])  # 100 * 0.75 + 0 * 0.25
    np.testing.assert_array_equal(out[0, 1], [139, 139, 139])  # 100 * 0.75 + 255 * 0.25 = 138.75
    np.testing.assert_array_equal(overlay(image, heat, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, heat, alpha=1.0, cmap="gray")[..., 0], [[0, 255], [255, 255]])


def test_overlay_resizes_the_map_and_accepts_gray_and_float_pictures():
    gray = np.full((6, 10), 0.5)  # float 0..1 grayscale
    out = overlay(gray, np.ones((3, 5)), alpha=0.0)
    assert out.shape == (6, 10, 3) and out.dtype == np.uint8
    assert np.all(out == 127)
    out = overlay(np.zeros((6, 10, 4), np.uint8), np.arange(15.0).reshape(3, 5), alpha=1.0, cmap="gray")
    assert out.shape == (6, 10, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255


def test_overlay_reads_integer_pictures_as_0_255():
    picture = np.full((2, 2, 3), 100, np.int64)
    np.testing.assert_array_equal(overlay(picture, np.ones((2, 2)), alpha=0.0), np.full((2, 2, 3), 100, np.uint8))


def test_overlay_signed_map_centres_zero():
    out = overlay(np.zeros((1, 3, 3), np.uint8), np.array([[-1.0, 0.0, 1.0]]), alpha=1.0, cmap="gray", signed=True)
    assert out[0, 0, 0] == 0 and out[0, 2, 0] == 255 and 126 <= out[0, 1, 0] <= 128


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_overlay_alpha_out_of_range(alpha):
    with pytest.raises(ValueError, match="alpha"):
        overlay(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2)), alpha=alpha)


# ---------------------------------------------------------------- display pictures and encoding


def test_display_picture_and_format():
    tiny = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    shown = display_picture(tiny)
    assert shown.shape == (336, 336, 3) and shown.dtype == np.uint8  # enlarged by a whole factor, crisp
    np.testing.assert_array_equal(shown[:12, :12, 0], np.full((12, 12), tiny[0, 0]))
    assert display_format(tiny) == "PNG" and display_format(np.zeros((400, 600, 3), np.uint8)) == "JPEG"


def test_encode_png_is_lossless_keeps_grey_and_jpeg_is_close():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(encode(picture, "PNG"))))
    np.testing.assert_array_equal(back, picture)
    grey = Image.open(io.BytesIO(encode(picture[..., 0])))
    assert grey.mode == "L"
    smooth = np.repeat(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], 64, axis=0).repeat(3, axis=2)
    jpeg = np.asarray(Image.open(io.BytesIO(encode(smooth, "jpeg"))), dtype=np.int16)
    assert np.abs(jpeg - smooth).mean() < 2
    with pytest.raises(ValueError, match="PNG or JPEG"):
        encode(picture, "gif")


def test_default_colormaps():
    assert default_cmap(signed=True) == SIGNED_CMAP == "coolwarm" and default_cmap(signed=False) == "jet"


def test_method_overlay_draws_signed_methods_with_signed_overlay():
    picture = np.full((4, 4, 3), 90, np.uint8)
    heat = np.array([[-2.0, 0.0], [1.0, 2.0]])
    np.testing.assert_array_equal(
        method_overlay(METHODS["occlusion"], picture, heat, cmap="coolwarm"),
        signed_overlay(picture, heat, cmap="coolwarm"),
    )
    np.testing.assert_array_equal(method_overlay(METHODS["gradcam"], picture, heat), overlay(picture, heat))


# ---------------------------------------------------------------- the compare grid: the export draws what the page shows


@pytest.fixture(scope="module")
def grid_and_picture(tiny, handle_of):
    from interpret.compare import compare

    model, _, _ = tiny.nested_sequential(input_shape=(12, 12, 3), classes=3, seed=1)
    m = handle_of(model, class_names=["a", "b", "c"])
    rng = np.random.default_rng(7)
    picture = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    grid = compare(
        m, picture, ["occlusion", "gradcam"], targets=[0, 2], params={"occlusion": {"patch": 4, "stride": 2}}
    )
    return grid, picture


def exported_panels(grid, picture, **kwargs) -> dict[tuple[str, int], np.ndarray]:
    """Each panel cut out of the exported PNG, at the pixels where the figure put it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    png = np.asarray(Image.open(io.BytesIO(grid_png(grid, picture, **kwargs))).convert("RGB"), dtype=np.int16)
    fig = grid_figure(grid, picture, **kwargs)  # the same layout, to find the panels in the PNG
    FigureCanvasAgg(fig).draw()
    height = png.shape[0]
    cols = len(grid.targets) + 1
    out = {}
    for r, name in enumerate(grid.methods):
        for c, t in enumerate(grid.targets, start=1):
            x0, y0, x1, y1 = fig.axes[r * cols + c].images[0].get_window_extent().extents
            top, bottom, left, right = round(height - y1), round(height - y0), round(x0), round(x1)
            out[(name, t)] = png[top:bottom, left:right]
    return out


def as_drawn(screen: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The on-screen panel shrunk to the size the PNG drew it at."""
    h, w = region.shape[:2]
    return cv2.resize(screen, (w, h), interpolation=cv2.INTER_AREA).astype(np.int16)


def inner(a: np.ndarray, border: int = 3) -> np.ndarray:
    return a[border:-border, border:-border]


@pytest.mark.parametrize("shared", [False, True])
def test_exported_png_draws_each_panel_as_the_compare_page_shows_it(grid_and_picture, shared):
    """The signed occlusion panel in the PNG has the page's colours (coolwarm, opaque by strength), not jet."""
    grid, picture = grid_and_picture
    kwargs = dict(shared=shared, alpha=0.8, cmap="jet", dpi=100)
    scales = panel_scales(grid, shared)
    exported = exported_panels(grid, picture, **kwargs)
    for (name, t), region in exported.items():
        p = grid.panel(name, t)
        screen = grid_panel(p, picture, alpha=0.8, cmap="jet", vmax=scales[(name, t)])  # what the page shows
        assert region.shape[0] > 100 and region.shape[1] > 100
        diff = np.abs(inner(region) - inner(as_drawn(screen, region))).mean()
        assert diff < 6, f"{name} for class {t}: the export differs from the page by {diff:.1f} levels"

    # The check can fail: the old export (a plain jet overlay of the signed map) is far from the page.
    occ = grid.panel("occlusion", 0)
    screen = grid_panel(occ, picture, alpha=0.8, cmap="jet", vmax=scales[("occlusion", 0)])
    old_way = overlay(
        display_picture(picture), occ.heatmap, alpha=0.8, cmap="jet", signed=True, vmax=scales[("occlusion", 0)]
    )
    region = exported[("occlusion", 0)]
    assert np.abs(inner(as_drawn(old_way, region)) - inner(as_drawn(screen, region))).mean() > 20


def test_grid_panel_uses_the_signed_colormap_for_signed_methods_only(grid_and_picture):
    grid, picture = grid_and_picture
    occ, cam = grid.panel("occlusion", 2), grid.panel("gradcam", 2)
    shown = display_picture(picture)
    np.testing.assert_array_equal(
        grid_panel(occ, picture, alpha=0.7, cmap="viridis"), signed_overlay(shown, occ.heatmap, 0.7, "coolwarm")
    )
    np.testing.assert_array_equal(
        grid_panel(cam, picture, alpha=0.7, cmap="viridis"), overlay(shown, cam.heatmap, 0.7, "viridis")
    )
