"""The one seam between pages and the library: run ``fn(model, **kwargs)`` for the chosen model.

Pages never call a model directly. They call a module-level function of ``interpret``
(or ``models``) through ``run``, so that where the work happens can change in one place:
bundled and zoo models run in this process; uploaded models are meant to run in a
sandboxed worker process (see issue 5), which is why results must be plain data
(NumPy arrays, numbers, strings, lists, dicts, dataclasses of those).

Pages may read these handle attributes directly: ``name, input_shape, class_names,
num_classes, conv_layers, source``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from models import ModelHandle

T = TypeVar("T")


def run(model: ModelHandle, fn: Callable[..., T], /, **kwargs: Any) -> T:
    return fn(model, **kwargs)


def top_k(m: ModelHandle, image: Any, k: int = 5) -> list[tuple[int, str, float]]:
    """Top-k (index, name, probability) for one picture (a module-level function, so ``run`` can ship it)."""
    return m.top_k(image, k)
