"""The functions a model worker may run, registered by name: nothing else crosses the pipe.

A page asks ``serving.compute.run(model, fn, **kwargs)``. For an uploaded model the worker
process receives the task's *name* and looks it up in ``TASKS``; a name that is not in the
table is refused on both sides. Registering a function is one line in ``TASKS`` below (or
``@task`` on a function of this module). A task takes the model handle first and returns
plain data (``serving.wire``: arrays, numbers, strings, lists, tuples, dicts, dataclasses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from interpret import explain
from interpret.activation_index import channel_maps, channel_peaks
from interpret.activations import feature_maps
from interpret.batch import explain_pictures, predict_pixels
from interpret.compare import compare, default_targets
from interpret.feature_visualization import maximize_activation, target_units
from interpret.filters import filter_bank, filter_layers
from interpret.metrics import deletion_insertion_maps, evaluate_picture, sanity_check
from interpret.model_summary import model_summary
from interpret.receptive_field import layer_receptive_field, receptive_field_table
from interpret.top_patches import top_patches
from models import ModelHandle


class UnknownTask(ValueError):
    """A function that is not registered as a worker task."""


TASKS: dict[str, Callable[..., Any]] = {}


def task(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register ``fn`` as a worker task under its own name."""
    name = fn.__name__
    if name in TASKS and TASKS[name] is not fn:
        raise ValueError(f"Two worker tasks are named {name!r}.")
    TASKS[name] = fn
    return fn


for _fn in (
    channel_maps,
    channel_peaks,
    explain,
    explain_pictures,
    compare,
    default_targets,
    deletion_insertion_maps,
    evaluate_picture,
    feature_maps,
    filter_bank,
    filter_layers,
    layer_receptive_field,
    maximize_activation,
    model_summary,
    predict_pixels,
    receptive_field_table,
    sanity_check,
    target_units,
    top_patches,
):
    task(_fn)


@task
def top_k(m: ModelHandle, image: Any, k: int = 5) -> list[tuple[int, str, float]]:
    """Top-k (index, name, probability) for one picture."""
    return m.top_k(image, k)


@task
def predict(m: ModelHandle, images: Any) -> Any:
    """(N, K) probabilities for a batch of pictures."""
    return m.predict(images)


def task_name(fn: Callable[..., Any]) -> str:
    """The registered name of ``fn``; refuses any function that is not in ``TASKS``."""
    name = getattr(fn, "__name__", "")
    if TASKS.get(name) is not fn:
        raise UnknownTask(f"{getattr(fn, '__qualname__', fn)!r} is not a registered worker task (serving.tasks).")
    return name


def resolve(name: Any) -> Callable[..., Any]:
    """The task registered as ``name`` (run inside the worker)."""
    fn = TASKS.get(name) if isinstance(name, str) else None
    if fn is None:
        raise UnknownTask(f"The task {name!r} is not allowed.")
    return fn
