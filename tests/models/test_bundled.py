"""The bundled default model: works offline, classifies its own samples, and its card is honest."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from interpret.images import read_image
from models import load
from models.bundled import WEIGHTS
from models.fashion_mnist_data import DEBIAN_DIR, load_fashion_mnist

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "assets" / "samples" / "fashion"
CARD = ROOT / "assets" / "models" / "fashion_mnist_cnn.md"


@pytest.fixture(scope="module")
def bundled():
    return load("fashion-mnist-cnn")


def card_accuracy() -> float:
    text = CARD.read_text(encoding="utf-8")
    section = text.split("## Accuracy", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"\*\*(0\.\d+|1\.0+)\*\*", section)
    assert match, "the model card's Accuracy section must state the test accuracy in bold"
    assert "10,000" in section, "the accuracy must be on the full 10,000-image test set"
    return float(match.group(1))


def test_bundled_model_shape_and_head(bundled):
    assert bundled.input_shape == (28, 28, 1)
    assert bundled.num_classes == 10 and bundled.head.kind == "softmax"
    assert bundled.last_conv_layer == "block3_relu2"
    # CAM applies: global average pooling, (dropout), then one dense layer
    kinds = [type(layer) for layer in bundled.model.layers[-3:]]
    assert kinds == [keras.layers.GlobalAveragePooling2D, keras.layers.Dropout, keras.layers.Dense]
    assert WEIGHTS.stat().st_size < 5_000_000


def test_samples_cover_every_class_twice():
    labels = [int(p.name.split("_", 1)[0]) for p in SAMPLES.glob("*.png")]
    assert sorted(set(labels)) == list(range(10))
    assert all(labels.count(c) >= 2 for c in range(10))


def test_bundled_model_classifies_the_committed_samples(bundled):
    files = sorted(SAMPLES.glob("*.png"))
    truth = np.array([int(p.name.split("_", 1)[0]) for p in files])
    predicted = np.array([int(np.argmax(bundled.predict(read_image(p))[0])) for p in files])
    accuracy = float((predicted == truth).mean())
    assert accuracy >= 0.90, list(zip([p.name for p in files], predicted, strict=True))


def test_sample_names_match_the_class_names(bundled):
    for p in SAMPLES.glob("*.png"):
        index, slug = p.stem.split("_")[:2]
        name = bundled.class_names[int(index)].lower()
        assert re.sub(r"[^a-z]+", "-", name).strip("-") == slug, (p.name, name)


def test_model_card_states_test_accuracy_of_at_least_0_90():
    assert card_accuracy() >= 0.90


@pytest.mark.slow
def test_model_card_accuracy_matches_the_full_test_set(bundled):
    # The test command installs Debian's dataset-fashion-mnist (scripts/install.sh test): never skipped.
    assert DEBIAN_DIR.is_dir(), f"{DEBIAN_DIR} is missing: apt-get install dataset-fashion-mnist"
    (_, _), (x_test, y_test) = load_fashion_mnist()
    assert len(x_test) == 10_000
    logits = bundled.logits(x_test[..., None], batch_size=1000)
    accuracy = float((logits.argmax(axis=1) == y_test).mean())
    assert accuracy >= 0.90
    assert accuracy == pytest.approx(card_accuracy(), abs=0.002)
