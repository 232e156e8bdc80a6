"""Walk a Keras model layer by layer, reaching into nested sub-models.

Keras can only give the output of a layer that sits directly in a model's own graph.
A transfer-learning model (a ``keras.applications`` base used as one layer of the
user's model) hides its conv layers one level down, which is why tf-keras-vis and
Xplique fail on it ("Output ... is not connected to inputs").

``run`` re-executes the model's graph itself, descending into Functional and
Sequential sub-models, so that any layer at any depth can be tapped by its path
(``"base/Conv_1"``) and any layer can be swapped for another callable (the final
softmax for its logits, a ReLU for a guided ReLU). The user's model is never
modified: layers are only called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
from keras.src.models.functional import Functional

SEP = "/"

Override = Callable[[str, keras.layers.Layer], Callable[..., Any] | None]


def is_container(layer: keras.layers.Layer) -> bool:
    """True for a sub-model whose layers ``run`` can reach into."""
    return isinstance(layer, (keras.Sequential, Functional))


def _sequential_layers(model: keras.Sequential) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def iter_layers(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, keras.layers.Layer]]:
    """Every layer at every depth, in execution order, with its path."""
    layers = model.layers
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = prefix + layer.name
        yield path, layer
        if is_container(layer):
            yield from iter_layers(layer, path + SEP)


def find_layer(model: keras.Model, path: str) -> keras.layers.Layer:
    """The layer at ``path`` ("base/Conv_1"); ``KeyError`` names the paths that exist."""
    for p, layer in iter_layers(model):
        if p == path:
            return layer
    raise KeyError(f"No layer {path!r} in model {model.name!r}.")


def output_rank(layer: keras.layers.Layer) -> int | None:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(out, (list, tuple)):
        return None
    return len(out.shape)


def spatial_layers(model: keras.Model) -> list[str]:
    """Paths of layers with a 4-D output (N, H, W, C): the layers Grad-CAM can use."""
    return [p for p, layer in iter_layers(model) if output_rank(layer) == 4]


def output_layer_path(model: keras.Model, prefix: str = "") -> str:
    """Path of the layer that produces the model's (first) output, through nesting."""
    if isinstance(model, keras.Sequential):
        last = _sequential_layers(model)[-1]
    else:
        last = model.outputs[0]._keras_history.operation
    path = prefix + last.name
    if is_container(last):
        return output_layer_path(last, path + SEP)
    return path


def _with_inference_mode(layer: keras.layers.Layer) -> Callable[..., Any]:
    if "training" in getattr(layer, "_call_context_args", ()) or getattr(layer, "_call_has_training_arg", False):
        return lambda *a, **k: layer(*a, **{**k, "training": False})
    return layer


def run(
    model: keras.Model,
    x: Any,
    taps: tuple[str, ...] = (),
    override: Override | None = None,
    prefix: str = "",
    tapped: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Run ``model`` on ``x`` in inference mode; return (output, {path: tapped output}).

    ``override(path, layer)`` may return a callable used instead of the layer.
    Works on real tensors (eager, inside ``tf.function``) and on symbolic ``KerasTensor``s.
    """
    tapped = {} if tapped is None else tapped

    def call_layer(layer: keras.layers.Layer) -> Callable[..., Any]:
        path = prefix + layer.name
        replacement = override(path, layer) if override else None
        if replacement is not None:
            fn = replacement
        elif is_container(layer):

            def fn(inp, *a, **k):
                return run(layer, inp, taps, override, path + SEP, tapped)[0]

        else:
            fn = _with_inference_mode(layer)

        if path in taps:

            def tapping(*a, **k):
                out = fn(*a, **k)
                tapped[path] = out
                return out

            return tapping
        return fn

    if isinstance(model, keras.Sequential):
        out = x
        for layer in _sequential_layers(model):
            out = call_layer(layer)(out)
    else:
        out = model._run_through_graph(x, operation_fn=call_layer)
        if isinstance(out, (list, tuple)) and len(out) == 1:
            out = out[0]
        elif isinstance(out, dict) and len(out) == 1:
            out = next(iter(out.values()))
    return out, tapped
