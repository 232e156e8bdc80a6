"""CNN Lens explanation library: pure TensorFlow/NumPy, never imports Streamlit.

>>> from interpret import explain, METHODS
>>> e = explain(m, image, method="gradcam")
>>> e.heatmap  # float32 (H, W) over the picture that was passed in
"""

from __future__ import annotations

# Each import registers one method in METHODS, in the order the UI lists them.
from interpret import saliency, smoothgrad, integrated_gradients, guided_backprop, occlusion  # noqa: F401  # isort: skip
from interpret import cam, gradcam, gradcam_plus_plus, guided_gradcam, scorecam, lime_superpixels  # noqa: F401  # isort: skip
from interpret.core import explain
from interpret.explanation import Explanation
from interpret.progress import Cancelled, Progress
from interpret.registry import METHODS, Method, Param

__all__ = ["METHODS", "Cancelled", "Explanation", "Method", "Param", "Progress", "explain"]
