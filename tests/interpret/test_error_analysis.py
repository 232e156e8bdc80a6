"""Error analysis over predictions: confusion matrix and accuracy against scikit-learn, cells and mistakes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from sklearn.metrics import confusion_matrix

from interpret.error_analysis import (
    Predictions,
    cell_members,
    confident_mistakes,
    confusion,
    most_confused,
    per_class_accuracy,
)


def predictions(seed: int = 0, n: int = 500, k: int = 4) -> Predictions:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    predicted = np.where(rng.random(n) < 0.7, labels, rng.integers(0, k, n))
    return Predictions(np.arange(n), labels, predicted, rng.random(n).astype(np.float32))


def test_confusion_and_accuracy_equal_scikit_learn():
    p = predictions()
    c = confusion(p)
    np.testing.assert_array_equal(c.matrix, confusion_matrix(p.labels, p.predicted))
    assert c.classes == c.columns == [0, 1, 2, 3]
    assert p.accuracy == np.trace(c.matrix) / c.matrix.sum()
    assert per_class_accuracy(p)[2] == (int(np.sum(p.labels == 2)), int(c.matrix[2, 2]))
    a, b, n = most_confused(c, 1)[0]
    off = c.matrix - np.diag(np.diag(c.matrix))
    assert n == off.max() and off[a, b] == n


def test_unknown_labels_and_predictions_outside_the_classes():
    p = Predictions(
        np.arange(6),
        np.array([0, 0, 1, -1, 1, 0]),
        np.array([0, 5, 1, 2, 7, 0]),  # 5 and 7: classes no picture belongs to
        np.array([0.9, 0.8, 0.7, 0.6, 0.95, 0.5], np.float32),
    )
    c = confusion(p)
    assert c.columns == [0, 1, -1] and c.matrix.tolist() == [[2, 0, 1], [0, 1, 1]]
    assert cell_members(p, 0, 0).tolist() == [0, 5]  # most confident first
    assert cell_members(p, 1, -1, c.columns).tolist() == [4]
    assert confident_mistakes(p).tolist() == [4, 1]  # the unlabelled picture 3 is no mistake
    assert p.accuracy == 3 / 5


def test_the_app_and_the_serving_layer_run_without_ray():
    code = (
        "import sys, serving.compute, serving.tasks, serving.batch, interpret.batch, models.datasets;"
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
