"""AppTest: the Dataset page on the bundled test set (checked against scikit-learn), an uploaded model with a
zip holding bad entries, and a zoo model whose classes are not the dataset's."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from interpret.images import encode_png
from models.fashion_mnist_data import DEBIAN_DIR

NESTED_CLASSES = ["cat", "dog", "fox"]


def ok(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def open_page(at) -> None:
    at.run()
    at.switch_page("views/dataset.py").run()
    ok(at)


def confusion_counts(at) -> tuple[np.ndarray, list[str], list[str]]:
    chart = next(c for c in at.main.get("plotly_chart") if c.key == "dataset:confusion")
    heat = json.loads(chart.proto.spec)["data"][0]
    return np.asarray(heat["customdata"]), heat["y"], heat["x"]


def pets_zip(rng, bad: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for c in NESTED_CLASSES:
            for i in range(2):
                z.writestr(f"pets/{c}/{i}.png", encode_png(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)))
        if bad:
            z.writestr("pets/dog/corrupt.png", encode_png(np.zeros((8, 8), np.uint8))[:40])
            z.writestr("pets/fox/notes.txt", b"not a picture")
            z.writestr("../../outside.png", encode_png(np.zeros((8, 8), np.uint8)))
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_DIR.exists(), reason="needs Debian's dataset-fashion-mnist")
def test_bundled_test_set_accuracy_and_confusion_match_scikit_learn(app_test):
    from sklearn.metrics import confusion_matrix

    from models import load
    from models.fashion_mnist_data import load_fashion_mnist

    _, (images, labels) = load_fashion_mnist()
    predicted = load("fashion-mnist-cnn").predict(images, batch_size=500).argmax(-1)  # independently of the page
    expected = confusion_matrix(labels, predicted, labels=list(range(10)))

    at = app_test()
    open_page(at)
    counts, rows, cols = confusion_counts(at)
    np.testing.assert_array_equal(counts, expected)
    assert rows == cols and rows[0] == "T-shirt/top" and len(rows) == 10
    accuracy = next(m for m in at.metric if m.label == "Accuracy")
    assert accuracy.value == f"{np.mean(predicted == labels):.2%}"
    table = at.dataframe[0].value
    np.testing.assert_allclose(table["accuracy"], np.diag(expected) / expected.sum(1))

    # the default cell is the most confused pair; choose another one with the pickers
    true_box = next(s for s in at.selectbox if s.key.startswith("dataset:true:"))
    pred_box = next(s for s in at.selectbox if s.key.startswith("dataset:pred:"))
    off = expected - np.diag(np.diag(expected))
    a, b = np.unravel_index(np.argmax(off), off.shape)
    assert (true_box.value, pred_box.value) == (rows[a], rows[b])
    true_box.set_value("Coat").run()
    pred_box = next(s for s in at.selectbox if s.key.startswith("dataset:pred:"))
    pred_box.set_value("Coat").run()
    ok(at)
    n = expected[4, 4]
    assert any(c.value.startswith(f"{n:,} pictures of Coat predicted as Coat") for c in at.caption)
    shown = [c.value for c in at.caption if c.value.startswith("Coat ") and "true: Coat" in c.value]
    assert len(shown) == 12  # the cell's gallery: the 12 most confident
    confidences = [float(c.split()[1].rstrip("%")) for c in shown]
    assert confidences == sorted(confidences, reverse=True)
    assert len([c for c in at.caption if "true:" in c.value]) == 24  # and the most confident mistakes

    # coming back is instant: the predictions are cached per model and dataset
    at.switch_page("views/model.py").run()
    at.switch_page("views/dataset.py").run()
    assert not at.get("progress")
    ok(at)

    # "Open in Explain" makes the picture the sidebar's picture
    next(b for b in at.button if b.key.startswith("dataset:open:cell:")).click().run()
    ok(at)
    assert at.radio(key="image_source").value == "From the Dataset page"
    assert at.session_state["dataset_picture"][0].startswith("fashion-mnist-test/")


def test_uploaded_model_on_a_zip_with_bad_entries(app_test, tiny, tmp_path, rng):
    model, _, _ = tiny.nested_sequential(input_shape=(32, 32, 3), classes=3)
    path = tmp_path / "nested.keras"
    model.save(path)
    at = app_test()
    open_page(at)
    at.radio(key="model_source").set_value("Upload a .keras model").run()
    at.text_input(key="names_typed").set_value(", ".join(NESTED_CLASSES)).run()
    at.file_uploader(key="model_upload").set_value(
        ("nested.keras", path.read_bytes(), "application/octet-stream")
    ).run()
    at.radio(key="dataset:source").set_value("A zip of my pictures").run()
    at.file_uploader(key="dataset:zip").set_value(("pets.zip", pets_zip(rng), "application/zip")).run()
    ok(at)
    listed = " ".join(e.value for e in at.text)
    assert "pets/fox/notes.txt: skipped, not a picture" in listed
    assert "../../outside.png: skipped, its path leads out of the archive" in listed
    assert "dog/corrupt.png: skipped" in listed  # found when read, listed after the predictions
    counts, rows, _ = confusion_counts(at)
    assert counts.sum() == 6 and rows == NESTED_CLASSES
    assert any(c.value.startswith("6 pictures predicted") for c in at.caption)


@pytest.mark.slow
def test_zoo_model_whose_classes_are_not_the_datasets(app_test, rng):
    at = app_test()
    open_page(at)
    at.radio(key="dataset:source").set_value("A zip of my pictures").run()
    at.file_uploader(key="dataset:zip").set_value(("pets.zip", pets_zip(rng, bad=False), "application/zip")).run()
    at.radio(key="model_source").set_value("ImageNet zoo").run()
    at.selectbox(key="zoo_name").set_value("mobilenet_v2").run()
    at.radio(key="zoo_weights").set_value("Random (offline demo)").run()
    ok(at)
    assert any("not the model's classes" in w.value for w in at.warning)
    assert len([c for c in at.caption if "true:" in c.value]) == 6
