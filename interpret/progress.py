"""Progress reports and cancellation for long methods (perturbations, Score-CAM, LIME)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


class Cancelled(Exception):
    """The job was superseded (the user changed a choice) and stopped between batches."""


@dataclass
class Progress:
    callback: Callable[[float, str], None] | None = None
    cancel: threading.Event | None = None

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("superseded by a newer request")
        if self.callback is not None:
            self.callback(min(max(float(fraction), 0.0), 1.0), message)
