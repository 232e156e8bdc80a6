"""Can I trust this heatmap? Faithfulness metrics and sanity checks (pure TensorFlow/NumPy, no Streamlit).

One module per metric, each citing its paper:

- :mod:`~interpret.metrics.deletion_insertion`: deletion and insertion curves (Petsiuk et al. 2018, RISE);
- :mod:`~interpret.metrics.average_drop`: Average Drop % and Increase in Confidence (Chattopadhay et al. 2018);
- :mod:`~interpret.metrics.mufidelity`: MuFidelity (Bhatt et al. 2020);
- :mod:`~interpret.metrics.sanity`: model-randomisation sanity check (Adebayo et al. 2018), with the
  similarity measures of :mod:`~interpret.metrics.similarity` (Spearman, SSIM, HOG);
- :mod:`~interpret.metrics.baselines`: a seeded random map and a Sobel edge map, the floor to beat;
- :mod:`~interpret.metrics.evaluation`: all of them for many methods, on one picture or many.

The contract (results are plain dataclasses of NumPy arrays and floats)::

    >>> from interpret.metrics import deletion, insertion, sanity_check, evaluate
    >>> c = deletion(m, image, heatmap, target=None, steps=20, substrate="zero", score="probability")
    >>> c.fractions, c.scores, c.auc  # fractions 0..1 of the pixels removed; lower AUC is better
    >>> c = insertion(m, image, heatmap, steps=20, substrate="blur")  # pixels kept; higher AUC is better
    >>> s = sanity_check(m, image, method="gradcam", target=None, mode="cascading")
    >>> s.steps[-1].block, s.steps[-1].spearman, s.steps[-1].spearman_abs, s.steps[-1].ssim, s.steps[-1].hog
    >>> s.passed  # |Spearman| < 0.5 once every weight is random
    >>> t = evaluate(m, images, labels=None, methods=["gradcam", "random", "edge"], metrics=["deletion", "insertion"])
    >>> t.values["deletion_auc"]  # (methods, pictures); t.summary(): means with 95% CIs

- ``image`` is the picture as a user has it (uint8 or 0..1 float, grey or colour, any size);
  ``heatmap`` is (H, W) over it (``explain(...).heatmap``). Pixels are those of the picture
  passed in; a removed pixel becomes the substrate in all its channels: ``"zero"`` (black),
  ``"mean"`` (the picture's mean colour) or ``"blur"`` (the picture blurred).
- ``target=None`` is the model's top-1 class. ``score="probability"`` follows what the model
  reports; ``"logit"`` the class logit.
- Every perturbed copy goes through the model in batches at the handle's best batch size;
  MuFidelity's seeded subsets (and their forward passes) are shared by all maps of a picture.
- The sanity check randomises a *copy* of the model in place, block by block from the logits
  down; the user's model is never modified.
- ``COLUMNS`` says, for every number, whether higher or lower is better, and its paper.
"""

from __future__ import annotations

from interpret.metrics.average_drop import ConfidenceChange, average_drop
from interpret.metrics.baselines import BASELINES, baseline_map, edge_map, random_map
from interpret.metrics.columns import COLUMNS, DEFAULT_METRICS, METRICS, Column
from interpret.metrics.deletion_insertion import Curve, deletion, deletion_insertion, deletion_insertion_maps, insertion
from interpret.metrics.evaluation import (
    Evaluation,
    PictureEvaluation,
    Summary,
    evaluate,
    evaluate_picture,
    write_csv,
    write_json,
)
from interpret.metrics.mufidelity import MuFidelityProbe, mufidelity, mufidelity_probe
from interpret.metrics.sanity import PASS_SPEARMAN, SanityCheck, SanityStep, sanity_check
from interpret.metrics.similarity import hog_similarity, spearman, ssim

__all__ = [
    "BASELINES",
    "COLUMNS",
    "DEFAULT_METRICS",
    "METRICS",
    "PASS_SPEARMAN",
    "Column",
    "ConfidenceChange",
    "Curve",
    "Evaluation",
    "MuFidelityProbe",
    "PictureEvaluation",
    "SanityCheck",
    "SanityStep",
    "Summary",
    "average_drop",
    "baseline_map",
    "deletion",
    "deletion_insertion",
    "deletion_insertion_maps",
    "edge_map",
    "evaluate",
    "evaluate_picture",
    "hog_similarity",
    "insertion",
    "mufidelity",
    "mufidelity_probe",
    "random_map",
    "sanity_check",
    "spearman",
    "ssim",
    "write_csv",
    "write_json",
]
