"""CNN Lens explanation library: pure TensorFlow/NumPy, never imports Streamlit.

    from interpret import explain, METHODS
    e = explain(m, image, method="gradcam")
    e.heatmap  # float32 (H, W) over the picture that was passed in
"""

from __future__ import annotations

# Each import registers one method in METHODS, in the order the UI lists them.
from interpret import gradcam, saliency  # noqa: F401
from interpret.core import explain
from interpret.explanation import Explanation
from interpret.progress import Cancelled, Progress
from interpret.registry import METHODS, Method, Param

__all__ = ["METHODS", "Cancelled", "Explanation", "Method", "Param", "Progress", "explain"]
