"""Conv filters as pictures: the first layer as RGB (or grey) tiles, deeper layers per channel.

As in Krizhevsky et al. (2012) and Zeiler & Fergus (2014), each filter is shown
normalised on its own (min -> 0, max -> 1), so that its pattern is visible whatever its scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models import graph
from models.handle import ModelHandle


@dataclass
class FilterBank:
    """The weights of one conv layer, as (kh, kw, in_channels, filters)."""

    layer: str
    type: str
    kernel: np.ndarray
    bias: np.ndarray | None
    note: str = ""
    stats: dict[str, float] = field(default_factory=dict)


def _kernel_of(layer) -> tuple[np.ndarray, str] | None:
    """A 2-D conv kernel as (kh, kw, in, out), or None for layers without one."""
    name = type(layer).__name__
    if "Depthwise" in name and hasattr(layer, "kernel"):
        k = np.asarray(layer.kernel.numpy() if hasattr(layer.kernel, "numpy") else layer.kernel)
        kh, kw, cin, mult = k.shape
        return k.reshape(kh, kw, 1, cin * mult), "depthwise: each filter sees one input channel"
    if "Separable" in name and hasattr(layer, "depthwise_kernel"):
        k = np.asarray(layer.depthwise_kernel.numpy())
        kh, kw, cin, mult = k.shape
        return k.reshape(
            kh, kw, 1, cin * mult
        ), "separable: the depthwise (spatial) part; a 1x1 conv mixes channels after"
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        return None
    k = np.asarray(kernel.numpy())
    if k.ndim != 4 or "Transpose" in name:
        return None
    return k, ""


def filter_layers(m: ModelHandle) -> list[str]:
    """Paths of the layers with 2-D conv kernels (Conv2D, DepthwiseConv2D, SeparableConv2D), nested too."""
    return [path for path, layer in graph.iter_layers(m.model) if _kernel_of(layer) is not None]


def first_filter_layer(m: ModelHandle) -> str:
    layers = filter_layers(m)
    if not layers:
        raise ValueError(f"{m.name} has no 2-D convolution layer with a kernel to show.")
    return layers[0]


def weight_stats(kernel: np.ndarray, bias: np.ndarray | None) -> dict[str, float]:
    """Summary numbers of a kernel (and bias): count, mean, std, min, max, share of near-zero weights."""
    k = np.asarray(kernel, dtype=np.float64)
    scale = float(np.abs(k).max()) or 1.0
    stats = {
        "weights": float(k.size),
        "weight mean": float(k.mean()),
        "weight std": float(k.std()),
        "weight min": float(k.min()),
        "weight max": float(k.max()),
        "near-zero share (|w| < 1% of max)": float(np.mean(np.abs(k) < 0.01 * scale)),
    }
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64)
        stats.update(
            {
                "bias mean": float(b.mean()),
                "bias std": float(b.std()),
                "bias min": float(b.min()),
                "bias max": float(b.max()),
            }
        )
    return stats


def filter_bank(m: ModelHandle, layer: str | None = None) -> FilterBank:
    """The kernel and bias of ``layer`` (default: the first conv layer), with statistics."""
    layer = layer or first_filter_layer(m)
    try:
        obj = m.layer(layer)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    found = _kernel_of(obj)
    if found is None:
        raise ValueError(
            f"Layer {layer!r} has no 2-D convolution kernel; pick one of {', '.join(filter_layers(m)[:5])}, ..."
        )
    kernel, note = found
    bias = getattr(obj, "bias", None)
    bias_arr = None if bias is None else np.asarray(bias.numpy(), dtype=np.float32)
    kernel = kernel.astype(np.float32)
    return FilterBank(layer, type(obj).__name__, kernel, bias_arr, note, weight_stats(kernel, bias_arr))


def normalize_each(tiles: np.ndarray) -> np.ndarray:
    """(N, ...) -> each tile scaled to 0..1 on its own; a constant tile becomes 0.5."""
    t = np.asarray(tiles, dtype=np.float32)
    axes = tuple(range(1, t.ndim))
    lo = t.min(axis=axes, keepdims=True)
    span = t.max(axis=axes, keepdims=True) - lo
    return np.where(span > 0, (t - lo) / np.where(span > 0, span, 1.0), 0.5).astype(np.float32)


def filter_tiles(kernel: np.ndarray, mode: str = "auto") -> np.ndarray:
    """Filters as pictures.

    ``mode``: "rgb" -> (filters, kh, kw, 3), needs 3 input channels; "mean" -> (filters, kh, kw),
    the average over input channels; "channels" -> (filters, in_channels, kh, kw);
    "auto" -> "rgb" for 3 input channels, else "mean". Raw values: normalise with ``normalize_each``.
    """
    k = np.asarray(kernel, dtype=np.float32)
    if k.ndim != 4:
        raise ValueError(f"Expected a (kh, kw, in, out) kernel; got shape {k.shape}.")
    cin = k.shape[2]
    if mode == "auto":
        mode = "rgb" if cin == 3 else "mean"
    per_filter = np.transpose(k, (3, 0, 1, 2))  # (out, kh, kw, in)
    if mode == "rgb":
        if cin != 3:
            raise ValueError(
                f"RGB tiles need 3 input channels; this layer has {cin}. Show them averaged or per channel."
            )
        return per_filter
    if mode == "mean":
        return per_filter.mean(axis=-1)
    if mode == "channels":
        return np.transpose(per_filter, (0, 3, 1, 2))
    raise ValueError(f"Unknown mode {mode!r}; choose rgb, mean, channels or auto.")


def mosaic(tiles: np.ndarray, columns: int, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """(N, h, w[, 3]) tiles -> one (rows*(h+gap)-gap, columns*(w+gap)-gap[, 3]) picture, row by row."""
    t = np.asarray(tiles, dtype=np.float32)
    n, h, w = t.shape[:3]
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, *t.shape[3:]), fill, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = t[i]
    return out
