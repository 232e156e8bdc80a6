"""The one renderer: how pictures and heatmaps are drawn, on every page, in the CLI and in every export.

- ``display_size`` and ``fit``: the size a picture is shown at (big ones shrunk, tiny ones
  enlarged with crisp pixels);
- ``normalize`` and ``colorize``: a heatmap to 0..1, and 0..1 to colours;
- ``overlay`` (plain maps) and ``signed_overlay`` (maps with meaningful negative values,
  on a diverging colormap, opaque only where the evidence is strong); ``method_overlay``
  picks between them by the method's registry entry and draws its extras;
- ``boundaries``: superpixel outlines (LIME);
- ``display_picture``, ``display_format`` and ``encode``: a picture as pages show it, and its bytes;
- ``grid_panel``, ``panel_scales``, ``grid_figure`` and ``grid_png``: the compare grid, the
  same panel pictures on the page and in the exported PNG.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import cv2
import numpy as np
from matplotlib import colormaps
from skimage.segmentation import mark_boundaries

from models.preprocessing import resize_map

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from interpret.compare import CompareGrid, Panel
    from interpret.registry import Method

COLORMAPS = ("jet", "inferno", "viridis", "magma", "turbo", "coolwarm", "gray")
SIGNED_CMAP = "coolwarm"  # the default for signed maps: zero in the middle, red for, blue against
PLAIN_CMAP = "jet"  # the default for plain (non-negative) maps
JPEG_QUALITY = 90
DISPLAY_MAX_SIDE = 1600  # larger pictures are shown (and downloaded) scaled down to this
DISPLAY_MIN_SIDE = 320  # tiny pictures (28x28 Fashion-MNIST) are enlarged with crisp pixels


def display_size(height: int, width: int) -> tuple[int, int]:
    """The size pictures are drawn at: big ones scaled down, tiny ones scaled up by a whole factor."""
    side = max(height, width)
    if side > DISPLAY_MAX_SIDE:
        scale = DISPLAY_MAX_SIDE / side
        return max(1, round(height * scale)), max(1, round(width * scale))
    if side < DISPLAY_MIN_SIDE:
        factor = -(-DISPLAY_MIN_SIDE // side)
        return height * factor, width * factor
    return height, width


def fit(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """The picture as uint8 RGB at (height, width): area-averaged when shrinking, crisp pixels when enlarging."""
    rgb = as_rgb(picture)
    if rgb.shape[:2] == (height, width):
        return rgb
    shrinking = height < rgb.shape[0]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_NEAREST)


def display_picture(image: np.ndarray) -> np.ndarray:
    """The picture as pages draw it: uint8 RGB at ``display_size``."""
    return fit(image, *display_size(*np.asarray(image).shape[:2]))


def display_format(image: np.ndarray) -> str:
    """How a picture travels to the browser: enlarged tiny pictures stay crisp as PNG, photos go as JPEG."""
    return "PNG" if max(np.asarray(image).shape[:2]) < DISPLAY_MIN_SIDE else "JPEG"


def encode(picture: np.ndarray, fmt: str = "PNG") -> bytes:
    """A picture -> PNG (lossless) or JPEG (quality ``JPEG_QUALITY``) bytes; a uint8 grey picture stays grey."""
    from PIL import Image

    fmt = fmt.upper()
    if fmt not in ("PNG", "JPEG"):
        raise ValueError(f"Unknown picture format {fmt!r}; choose PNG or JPEG.")
    pic = np.asarray(picture)
    pic = pic if pic.ndim == 2 and pic.dtype == np.uint8 else as_rgb(pic)
    buf = io.BytesIO()
    Image.fromarray(pic).save(buf, format=fmt, **({"quality": JPEG_QUALITY} if fmt == "JPEG" else {}))
    return buf.getvalue()


def default_cmap(signed: bool) -> str:
    """The colormap a map is drawn with unless a person picks another: diverging for signed maps."""
    return SIGNED_CMAP if signed else PLAIN_CMAP


def normalize(heatmap: np.ndarray, signed: bool = False, vmax: float | None = None) -> np.ndarray:
    """To 0..1; signed maps put zero at 0.5. A constant map gives zeros (or 0.5 when signed)."""
    h = np.nan_to_num(np.asarray(heatmap, dtype=np.float32))
    if signed:
        scale = vmax if vmax is not None else float(np.abs(h).max())
        return np.full_like(h, 0.5) if scale <= 0 else np.clip(0.5 + 0.5 * h / scale, 0, 1)
    lo = 0.0 if vmax is not None else float(h.min())
    hi = vmax if vmax is not None else float(h.max())
    return np.zeros_like(h) if hi <= lo else np.clip((h - lo) / (hi - lo), 0, 1)


def colorize(unit_map: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """0..1 map -> uint8 RGB."""
    if cmap not in colormaps:
        raise ValueError(f"Unknown colormap {cmap!r}; choose one of {', '.join(COLORMAPS)}.")
    return (colormaps[cmap](unit_map)[..., :3] * 255).astype(np.uint8)


def as_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if np.issubdtype(img.dtype, np.integer) and img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)  # integer pixels are 0..255, like uint8
    elif img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return img[..., :3]


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    alpha: float = 0.5,
    cmap: str = "jet",
    signed: bool = False,
    vmax: float | None = None,
) -> np.ndarray:
    """Blend a colour-mapped heatmap over the picture; uint8 RGB at the picture's size."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be between 0 and 1.")
    base = as_rgb(image)
    h, w = base.shape[:2]
    colour = colorize(normalize(resize_map(heatmap, h, w), signed=signed, vmax=vmax), cmap).astype(np.float32)
    return (base.astype(np.float32) * (1 - alpha) + colour * alpha).round().astype(np.uint8)


def signed_overlay(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = SIGNED_CMAP, vmax: float | None = None
) -> np.ndarray:
    """A signed map on a diverging colormap, zero in the middle, opaque where the evidence is strong.

    Where the map is near zero the picture shows through unchanged, so a few strong regions
    (occlusion patches, LIME superpixels) are not drowned in the colormap's middle grey.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be between 0 and 1.")
    base = as_rgb(image)
    h, w = base.shape[:2]
    unit = normalize(resize_map(heatmap, h, w), signed=True, vmax=vmax)  # 0.5 is zero
    a = alpha * np.sqrt(np.abs(unit - 0.5) * 2.0)[..., None]
    return (base.astype(np.float32) * (1 - a) + colorize(unit, cmap).astype(np.float32) * a).round().astype(np.uint8)


def boundaries(
    image: np.ndarray, segments: np.ndarray, color: tuple[float, float, float] = (1.0, 1.0, 0.0)
) -> np.ndarray:
    """The picture (any size, uint8 or 0..1 float, gray or RGB) with superpixel boundaries drawn: uint8 (H, W, 3)."""
    pic = np.asarray(image)
    pic = pic.astype(np.float32) / 255.0 if pic.dtype == np.uint8 else pic.astype(np.float32)
    if pic.ndim == 3 and pic.shape[-1] == 1:
        pic = pic[..., 0]
    if pic.ndim == 2:
        pic = np.repeat(pic[..., None], 3, axis=-1)
    pic = pic[..., :3]
    h, w = pic.shape[:2]
    seg = np.asarray(segments)
    if seg.shape != (h, w):
        seg = cv2.resize(seg.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
    marked = mark_boundaries(pic, seg, color=color)
    return (np.clip(marked, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def method_overlay(
    method: Method,
    image: np.ndarray,
    heatmap: np.ndarray,
    extras: dict | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    vmax: float | None = None,
) -> np.ndarray:
    """A method's heatmap drawn the way the method asks: signed or plain, then its extras (e.g. LIME's outlines)."""
    draw = signed_overlay if method.signed else overlay
    picture = draw(image, heatmap, alpha=alpha, cmap=cmap, vmax=vmax)
    if method.draw_extras is not None and extras:
        picture = method.draw_extras(picture, extras)
    return picture


# ---------------------------------------------------------------- the compare grid


def grid_panel(
    panel: Panel,
    image: np.ndarray,
    alpha: float = 0.5,
    cmap: str = PLAIN_CMAP,
    vmax: float | None = None,
    signed_cmap: str = SIGNED_CMAP,
) -> np.ndarray:
    """One panel of the compare grid, exactly as the Compare page shows it and ``grid_png`` exports it.

    The picture at display size with the panel's map drawn by its method's registry entry
    (``method_overlay``): plain maps on ``cmap``, signed maps on ``signed_cmap``.
    """
    from interpret.registry import METHODS

    method = METHODS[panel.method]
    colours = signed_cmap if method.signed else cmap
    return method_overlay(method, display_picture(image), panel.heatmap, None, alpha=alpha, cmap=colours, vmax=vmax)


def panel_scales(grid: CompareGrid, shared: bool) -> dict[tuple[str, int], float | None]:
    """Colour scale (vmax) per panel: ``None`` = each panel on its own; shared = one scale per method (row).

    Sharing across methods would compare unlike units (logit changes, gradients, CAM values),
    so "shared" means shared by the classes of one method.
    """
    scales: dict[tuple[str, int], float | None] = {}
    for name in grid.methods:
        row = [p for p in grid.panels if p.method == name]
        if shared:
            vmax = max(float(np.abs(p.heatmap).max() if p.signed else p.heatmap.max()) for p in row)
            vmax = vmax if vmax > 0 else None
        else:
            vmax = None
        for p in row:
            scales[(p.method, p.target)] = vmax
    return scales


def grid_figure(
    grid: CompareGrid,
    image: np.ndarray,
    shared: bool = False,
    alpha: float = 0.5,
    cmap: str = PLAIN_CMAP,
    dpi: int = 100,
    signed_cmap: str = SIGNED_CMAP,
) -> Figure:
    """The grid as a matplotlib figure: a row per method, a column per class, the picture first.

    Each panel is ``grid_panel``'s picture, the one the Compare page shows. A plain
    ``Figure`` (no pyplot), so nothing global is touched and threads may draw at once.
    """
    from matplotlib.figure import Figure

    from interpret.registry import METHODS

    scales = panel_scales(grid, shared)
    rows, cols = len(grid.methods), len(grid.targets) + 1
    fig = Figure(figsize=(2.6 * cols, 2.6 * rows), dpi=dpi)
    axes = fig.subplots(rows, cols, squeeze=False)
    shown = display_picture(image)
    for r, name in enumerate(grid.methods):
        axes[r][0].imshow(shown)
        axes[r][0].set_ylabel(METHODS[name].title, fontsize=10)
        for c, t in enumerate(grid.targets, start=1):
            p = grid.panel(name, t)
            axes[r][c].imshow(
                grid_panel(p, image, alpha=alpha, cmap=cmap, vmax=scales[(name, t)], signed_cmap=signed_cmap)
            )
            if r == 0:
                axes[r][c].set_title(f"{p.target_name} ({t})", fontsize=10)
    axes[0][0].set_title("input", fontsize=10)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def grid_png(
    grid: CompareGrid,
    image: np.ndarray,
    shared: bool = False,
    alpha: float = 0.5,
    cmap: str = PLAIN_CMAP,
    dpi: int = 100,
    signed_cmap: str = SIGNED_CMAP,
) -> bytes:
    """``grid_figure`` as PNG bytes: the Compare page's export."""
    fig = grid_figure(grid, image, shared=shared, alpha=alpha, cmap=cmap, dpi=dpi, signed_cmap=signed_cmap)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
