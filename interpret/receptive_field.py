"""Receptive fields: which input pixels each unit of each layer can see.

Computed layer by layer from kernel sizes, strides, dilations and padding, the way the
course teaches it (and Araujo, Norris & Sim (2019), "Computing Receptive Fields of
Convolutional Neural Networks", Distill, doi:10.23915/distill.00021):

    k_eff  = dilation * (kernel - 1) + 1
    size'  = size + (k_eff - 1) * jump
    jump'  = jump * stride
    start' = start - left_padding * jump

``start`` is the input coordinate of the first (top-left) edge of the field of output
unit 0; unit ``i`` sees input coordinates ``start + i * jump`` to
``start + i * jump + size - 1`` (parts may lie in the padding, outside the picture).

The walk re-executes the model's graph with ``models.graph.run``, so nested sub-models
are reached. Where branches meet (ResNet's Add, Inception's Concatenate) the field is the
union of the incoming fields, i.e. the largest over the paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras

from models import graph
from models.handle import ModelHandle


@dataclass
class Field:
    """The receptive field of one layer's output units, per spatial axis."""

    size: tuple[float, ...]
    jump: tuple[float, ...]
    start: tuple[float, ...]
    covers_input: bool = False  # the layer sees the whole input (Flatten, Dense, global pooling)
    approximate: bool = False  # an unknown layer changed the spatial size; the numbers are estimates


@dataclass
class LayerField:
    """One row of the receptive-field table."""

    path: str
    type: str
    output_shape: tuple[int | None, ...]
    size: tuple[float, ...]
    jump: tuple[float, ...]
    start: tuple[float, ...]
    covers_input: bool = False
    approximate: bool = False
    params: int = 0
    notes: list[str] = field(default_factory=list)


class _Traced:
    """What flows through the graph walk: a symbolic tensor plus its receptive field."""

    def __init__(self, tensor: Any, rf: Field) -> None:
        self.tensor = tensor
        self.rf = rf


def _spatial(shape: tuple) -> tuple:
    return tuple(shape[1:-1])


def _padding_left(mode: str, k_eff: int, stride: int, n_in: int | None, n_out: int | None) -> float:
    if mode == "valid":
        return 0.0
    if mode == "causal":
        return float(k_eff - 1)
    if n_in is None or n_out is None:  # "same" with an unknown size: the stride-1 value
        return float((k_eff - 1) // 2)
    total = max((n_out - 1) * stride + k_eff - n_in, 0)
    return float(total // 2)


def _as_tuple(value: Any, n: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    return value if len(value) == n else (value[0],) * n


def sliding_window(
    rf: Field,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: str,
    n_in: tuple,
    n_out: tuple,
) -> Field:
    """The field after one convolution or pooling window (the formulas in the module docstring)."""
    size, jump, start = [], [], []
    for i in range(len(rf.size)):
        k_eff = dilation[i] * (kernel[i] - 1) + 1
        left = _padding_left(padding, k_eff, stride[i], n_in[i], n_out[i])
        size.append(rf.size[i] + (k_eff - 1) * rf.jump[i])
        jump.append(rf.jump[i] * stride[i])
        start.append(rf.start[i] - left * rf.jump[i])
    return Field(tuple(size), tuple(jump), tuple(start), rf.covers_input, rf.approximate)


def union(fields: list[Field]) -> Field:
    """Where branches meet: the smallest field that holds every incoming one (largest over paths)."""
    if len(fields) == 1:
        return fields[0]
    n = min(len(f.size) for f in fields)
    start = tuple(min(f.start[i] for f in fields) for i in range(n))
    end = tuple(max(f.start[i] + f.size[i] for f in fields) for i in range(n))
    return Field(
        size=tuple(e - s for s, e in zip(start, end, strict=True)),
        jump=tuple(max(f.jump[i] for f in fields) for i in range(n)),
        start=start,
        covers_input=any(f.covers_input for f in fields),
        approximate=any(f.approximate for f in fields),
    )


def _whole(rf: Field, input_size: tuple) -> Field:
    return Field(tuple(float(s) for s in input_size), rf.jump, (0.0,) * len(input_size), True, rf.approximate)


def layer_field(layer: Any, rf: Field, in_shape: tuple, out_shape: tuple, input_size: tuple) -> Field:
    """The receptive field after ``layer`` given the field of its input."""
    n_in, n_out = _spatial(in_shape), _spatial(out_shape)
    dims = len(n_in)
    if len(out_shape) <= 2 or dims == 0:  # Flatten, Dense, global pooling: every unit sees everything
        return _whole(rf, input_size)
    L = keras.layers
    if isinstance(layer, L.ZeroPadding1D | L.ZeroPadding2D | L.ZeroPadding3D):
        pads = layer.padding if dims > 1 else (layer.padding,)
        start = tuple(rf.start[i] - pads[i][0] * rf.jump[i] for i in range(dims))
        return Field(rf.size, rf.jump, start, rf.covers_input, rf.approximate)
    if isinstance(layer, L.Cropping1D | L.Cropping2D | L.Cropping3D):
        crops = layer.cropping if dims > 1 else (layer.cropping,)
        start = tuple(rf.start[i] + crops[i][0] * rf.jump[i] for i in range(dims))
        return Field(rf.size, rf.jump, start, rf.covers_input, rf.approximate)
    transpose = "Transpose" in type(layer).__name__
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides") and not transpose:
        return sliding_window(
            rf,
            _as_tuple(layer.kernel_size, dims),
            _as_tuple(layer.strides, dims),
            _as_tuple(getattr(layer, "dilation_rate", 1), dims),
            layer.padding,
            n_in,
            n_out,
        )
    if hasattr(layer, "pool_size"):
        pool = _as_tuple(layer.pool_size, dims)
        strides = _as_tuple(layer.strides if layer.strides is not None else pool, dims)
        return sliding_window(rf, pool, strides, (1,) * dims, layer.padding, n_in, n_out)
    if n_in == n_out:  # BatchNorm, activations, dropout, 1x1 reshaping of channels, ...
        return rf
    # Unknown resampling (upsampling, resizing, transposed conv): scale the jump by the size ratio.
    ratio = tuple((a or 1) / (b or 1) for a, b in zip(n_in, n_out, strict=True))
    return Field(rf.size, tuple(j * r for j, r in zip(rf.jump, ratio, strict=True)), rf.start, rf.covers_input, True)


def _strip(args: Any) -> tuple[Any, list[Field]]:
    fields: list[Field] = []

    def unwrap(value: Any) -> Any:
        if isinstance(value, _Traced):
            fields.append(value.rf)
            return value.tensor
        return value

    return keras.tree.map_structure(unwrap, args), fields


def _first_tensor(outputs: Any) -> Any:
    flat = keras.tree.flatten(outputs)
    return flat[0] if flat else outputs


def model_fields(model: keras.Model) -> dict[str, Field]:
    """{layer path: receptive field of its output} for every layer, nested ones included."""
    shape = model.input_shape
    if isinstance(shape, list):
        raise ValueError("Receptive fields need a model with one input.")
    input_size = tuple(shape[1:-1])
    if any(s is None for s in input_size):
        raise ValueError(f"Receptive fields need a fixed input size; this model's input is {tuple(shape[1:])}.")
    dims = len(input_size)
    found: dict[str, Field] = {}

    def override(path: str, layer: Any):
        if graph.is_container(layer):
            return None

        def traced(*args: Any, **kwargs: Any) -> Any:
            (sym_args, sym_kwargs), fields = _strip((args, kwargs))
            out = layer(*sym_args, **sym_kwargs)
            first_in = _first_tensor(sym_args)
            rf = union(fields) if fields else Field((1.0,) * dims, (1.0,) * dims, (0.0,) * dims)
            out_t = _first_tensor(out)
            rf = layer_field(layer, rf, tuple(first_in.shape), tuple(out_t.shape), input_size)
            found.setdefault(path, rf)
            return keras.tree.map_structure(lambda t: _Traced(t, rf), out)

        return traced

    start = Field((1.0,) * dims, (1.0,) * dims, (0.0,) * dims)
    out, _ = graph.run(model, _Traced(keras.Input(shape=tuple(shape[1:])), start), override=override)
    # sub-models: the field of their output
    for path, layer in graph.iter_layers(model):
        if graph.is_container(layer) and path not in found:
            last = graph.output_layer_path(layer, path + graph.SEP)
            if last in found:
                found[path] = found[last]
    return found


def _shape_of(layer: Any) -> tuple[int | None, ...]:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return ()
    out = _first_tensor(out)
    return tuple(out.shape[1:])


def _count_params(layer: Any) -> int:
    try:
        return int(layer.count_params())
    except ValueError:  # not built
        return 0


def receptive_field_table(m: ModelHandle) -> list[LayerField]:
    """One row per layer (nested ones too): type, output shape, parameters, field size, jump and start."""
    fields = model_fields(m.model)
    rows = []
    for path, layer in graph.iter_layers(m.model):
        rf = fields.get(path)
        if rf is None:
            continue
        notes = []
        if rf.covers_input:
            notes.append("sees the whole input")
        if rf.approximate:
            notes.append("estimated: a layer with unknown resampling lies below")
        rows.append(
            LayerField(
                path=path,
                type=type(layer).__name__,
                output_shape=_shape_of(layer),
                size=rf.size,
                jump=rf.jump,
                start=rf.start,
                covers_input=rf.covers_input,
                approximate=rf.approximate,
                params=_count_params(layer),
                notes=notes,
            )
        )
    return rows


def layer_receptive_field(m: ModelHandle, layer: str) -> Field:
    """The receptive field of one layer's units (path as in ``m.conv_layers``)."""
    fields = m.cached("receptive_fields", lambda: model_fields(m.model))
    if layer not in fields:
        raise ValueError(f"No layer {layer!r} in {m.name}.")
    return fields[layer]


def field_box(rf: Field, position: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Input coordinates [first, last + 1) per axis seen by the unit at ``position`` (may exceed the input)."""
    box = []
    for i, p in enumerate(position):
        first = rf.start[i] + p * rf.jump[i]
        box.append((int(round(first)), int(round(first + rf.size[i]))))
    return tuple(box)
