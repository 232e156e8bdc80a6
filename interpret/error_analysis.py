"""Where a model fails on a dataset: accuracy, per-class accuracy, the confusion matrix and its pictures.

Pure NumPy over predictions (one predicted class and its probability per picture) and true
labels given as the model's class indices (-1: unknown, or not one of the model's classes;
see ``models.datasets.model_labels``). The Dataset page draws these; the tests compare them
with scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Predictions:
    """The model's answer for every picture of a dataset that could be read."""

    indices: np.ndarray  # int64 (N,): the pictures' indices in the dataset
    labels: np.ndarray  # int64 (N,): true class as the model's class index, -1 when unknown
    predicted: np.ndarray  # int64 (N,)
    confidence: np.ndarray  # float32 (N,): the probability of the predicted class
    problems: list[str] = field(default_factory=list)  # pictures that could not be read, by name
    seconds: float = 0.0

    @property
    def labelled(self) -> np.ndarray:
        return self.labels >= 0

    @property
    def accuracy(self) -> float:
        known = self.labelled
        return float(np.mean(self.labels[known] == self.predicted[known])) if known.any() else float("nan")


@dataclass
class Confusion:
    """Counts ``matrix[i, j]``: pictures of class ``classes[i]`` predicted as ``columns[j]``."""

    matrix: np.ndarray  # int64 (len(classes), len(columns))
    classes: list[int]  # rows: the true classes present, as model class indices
    columns: list[int]  # the same classes, then -1 ("another class") if any prediction lies outside them

    def row_fractions(self) -> np.ndarray:
        totals = self.matrix.sum(axis=1, keepdims=True)
        return np.divide(self.matrix, np.maximum(totals, 1), dtype=np.float64)


def confusion(p: Predictions) -> Confusion:
    """The confusion matrix over the labelled pictures (rows: true, columns: predicted)."""
    known = p.labelled
    y, yhat = p.labels[known], p.predicted[known]
    classes = sorted(int(c) for c in np.unique(y))
    outside = bool(np.any(~np.isin(yhat, classes)))
    columns = classes + ([-1] if outside else [])
    row = {c: i for i, c in enumerate(classes)}
    col = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(columns)), dtype=np.int64)
    for a, b in zip(y, yhat, strict=True):
        matrix[row[int(a)], col.get(int(b), len(columns) - 1)] += 1
    return Confusion(matrix, classes, columns)


def per_class_accuracy(p: Predictions) -> dict[int, tuple[int, int]]:
    """Model class index -> (pictures, correct), for the classes with labelled pictures."""
    known = p.labelled
    out = {}
    for c in sorted(int(v) for v in np.unique(p.labels[known])):
        sel = known & (p.labels == c)
        out[c] = (int(sel.sum()), int(np.sum(p.predicted[sel] == c)))
    return out


def most_confused(c: Confusion, k: int = 5) -> list[tuple[int, int, int]]:
    """The ``k`` largest off-diagonal cells: (true class, predicted class or -1, count), largest first."""
    cells = [
        (int(c.matrix[i, j]), c.classes[i], c.columns[j])
        for i in range(len(c.classes))
        for j in range(len(c.columns))
        if c.columns[j] != c.classes[i] and c.matrix[i, j] > 0
    ]
    cells.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(a, b, n) for n, a, b in cells[:k]]


def cell_members(p: Predictions, true_class: int, predicted_class: int, columns: list[int] | None = None) -> np.ndarray:
    """Positions (into ``p``'s arrays) of the pictures in one cell, most confident first.

    ``predicted_class=-1`` is the "another class" column: predictions outside ``columns``.
    """
    sel = p.labels == true_class
    if predicted_class == -1:
        sel &= ~np.isin(p.predicted, [c for c in (columns or []) if c >= 0])
    else:
        sel &= p.predicted == predicted_class
    where = np.flatnonzero(sel)
    return where[np.argsort(-p.confidence[where], kind="stable")]


def confident_mistakes(p: Predictions, k: int | None = None) -> np.ndarray:
    """Positions of the wrongly predicted labelled pictures, most confident first."""
    where = np.flatnonzero(p.labelled & (p.labels != p.predicted))
    order = where[np.argsort(-p.confidence[where], kind="stable")]
    return order if k is None else order[:k]


def most_confident(p: Predictions, k: int | None = None) -> np.ndarray:
    """Positions of all pictures, most confident first (for unlabeled datasets)."""
    order = np.argsort(-p.confidence, kind="stable")
    return order if k is None else order[:k]
