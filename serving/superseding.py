"""Long jobs on a page: a progress bar, and a newer choice superseding the running job.

Streamlit reruns the whole page script when the user changes a widget. Two things make the
previous run's job stop instead of finishing work nobody will look at:

- each run of a page calls ``supersede(state, key)``, which sets the cancel event of the
  previous run's job and stores a fresh one for this run; ``interpret.Progress`` checks the
  event between batches and raises ``interpret.Cancelled``. This reaches jobs that run
  outside the script thread (a worker process for uploaded models, a thread);
- the progress callback updates a Streamlit progress bar, and every Streamlit call is a
  point where the script thread hands over to a pending rerun, so a job running in the
  script thread also stops at its next batch.

The page treats ``Cancelled`` quietly: the newer run draws the newer result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, MutableMapping
from typing import Any

from interpret.progress import Progress


def supersede(state: MutableMapping[str, Any], key: str) -> threading.Event:
    """Cancel the job started under ``key`` by an earlier run; return the event for this run's job."""
    previous = state.get(key)
    if isinstance(previous, threading.Event):
        previous.set()
    event = threading.Event()
    state[key] = event
    return event


class Throttled:
    """Forward ``(fraction, message)`` to ``show`` only when the bar moves by at least ``step``.

    Keeps the number of messages sent to the browser (and replayed from the result cache)
    small, whatever the number of batches a method reports.
    """

    def __init__(self, show: Callable[[float, str], None], step: float = 0.02) -> None:
        self.show = show
        self.step = step
        self.last = -1.0

    def __call__(self, fraction: float, message: str = "") -> None:
        if fraction >= 1.0 or fraction - self.last >= self.step:
            self.last = fraction
            self.show(fraction, message)


def progress_for(show: Callable[[float, str], None], cancel: threading.Event) -> Progress:
    """The ``progress=`` argument for ``interpret.explain``: throttled updates plus cancellation."""
    return Progress(Throttled(show), cancel)
