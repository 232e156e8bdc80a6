"""The result of one explanation: a heatmap over the picture the user passed in, and what made it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Explanation:
    heatmap: np.ndarray  # float32 (H, W) at the input picture's own size, finite
    method: str
    target: int
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None
    target_name: str = ""
    score: float = float("nan")  # the target's logit for the picture


@dataclass
class MethodResult:
    """What a method function returns: a map at any resolution, plus extras."""

    heatmap: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)
    score: float | None = None  # the target's logit, when the method's own forward pass computed it
