"""The one seam between pages and the library: run ``fn(model, **kwargs)`` for the chosen model.

Pages never call a model directly. They call a module-level function of ``interpret``
(or of this module) through ``run``, so where the work happens is decided here:

- bundled and zoo models (``models.ModelHandle``) run in this process;
- uploaded models (``models.worker.UploadedModel``) run in their sandboxed worker process:
  ``fn`` is sent by name (an allow-list: module-level functions of ``interpret.*`` and
  ``app.compute``), the keyword arguments and the result travel as plain data
  (``models.wire``: JSON + NPZ). So results must be NumPy arrays, numbers, strings, lists,
  tuples, dicts or dataclasses of those. A ``progress`` callable stays in this process and
  receives the worker's reports.

Every call takes one of the server's job slots (``app.jobs``); when all are busy the person
is told to try again (``ServerBusy``, a ``ValueError``).

Pages may read these model attributes directly: ``name, input_shape, class_names,
num_classes, conv_layers, source``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from app import jobs
from models import ModelHandle
from models.worker import UploadedModel

T = TypeVar("T")
Model = ModelHandle | UploadedModel


def run(model: Model, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """``fn(model, **kwargs)``, here or in the upload's worker, within the server's job limit."""
    what = getattr(fn, "__name__", "This job").replace("_", " ").capitalize()
    with jobs.LIMITER.slot(what):
        if isinstance(model, UploadedModel):
            return model.call(fn, **kwargs)
        return fn(model, **kwargs)


def top_k(m: ModelHandle, image: Any, k: int = 5) -> list[tuple[int, str, float]]:
    """Top-k (index, name, probability) for one picture (a module-level function, so ``run`` can ship it)."""
    return m.top_k(image, k)


def predict(m: ModelHandle, images: Any) -> Any:
    """(N, K) probabilities for a batch of pictures."""
    return m.predict(images)
