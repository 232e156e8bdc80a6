"""The one seam between pages and the library: run a task for the chosen model.

Pages never call a model directly. They call ``run(model, fn, **kwargs)`` with a function
registered in ``serving.tasks``, so where the work happens is decided here:

- bundled and zoo models (``models.ModelHandle``) run in this process;
- uploaded models (``serving.pool.UploadedModel``) run in their sandboxed worker process:
  the task travels by name, the keyword arguments and the result as plain data
  (``serving.wire``: JSON + NPZ). So results must be NumPy arrays, numbers, strings, lists,
  tuples, dicts or dataclasses of those. A ``progress`` callable stays in this process and
  receives the worker's reports.

Every call takes one of the server's job slots (``serving.jobs``); when all are busy the
person is told to try again (``ServerBusy``, a ``ValueError``).

Pages may read these model attributes directly: ``name, input_shape, class_names,
num_classes, conv_layers, source``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from models import ModelHandle
from serving import jobs
from serving.pool import UploadedModel
from serving.tasks import task_name, top_k

T = TypeVar("T")
Model = ModelHandle | UploadedModel

__all__ = ["Model", "run", "top_k"]


def run(model: Model, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """``fn(model, **kwargs)``, here or in the upload's worker, within the server's job limit."""
    what = task_name(fn).replace("_", " ").capitalize()
    with jobs.LIMITER.slot(what):
        if isinstance(model, UploadedModel):
            return model.call(fn, **kwargs)
        return fn(model, **kwargs)
