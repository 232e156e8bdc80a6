"""AppTest runs of the Compare, Filters, Activations, Top patches, Feature visualisation and Model pages.

Each page is visited with three models chosen in the real sidebar: the bundled
Fashion-MNIST CNN, a zoo model (MobileNetV2 with random weights: no download) and a
nested model uploaded as a ``.keras`` file (a functional base inside a Sequential).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from interpret.images import encode_png

PAGES = ("compare", "filters", "activations", "patches", "feature_visualization", "model")
NESTED_CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(scope="module")
def nested_keras_file(tmp_path_factory, tiny) -> bytes:
    model, _, _ = tiny.nested_sequential(input_shape=(32, 32, 3), classes=3)
    path = tmp_path_factory.mktemp("upload") / "nested.keras"
    model.save(path)
    return path.read_bytes()


def ok(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def choose_model(at, source: str, nested_bytes: bytes | None = None) -> None:
    at.run()
    if source == "zoo":
        at.radio(key="model_source").set_value("ImageNet zoo").run()
        at.selectbox(key="zoo_name").set_value("mobilenet_v2").run()
        at.radio(key="zoo_weights").set_value("Random (offline demo)").run()
    elif source == "nested":
        at.radio(key="model_source").set_value("Upload a .keras model").run()
        at.text_input(key="names_typed").set_value(", ".join(NESTED_CLASSES)).run()
        at.file_uploader(key="model_upload").set_value(("nested.keras", nested_bytes, "application/octet-stream")).run()
    ok(at)


def images_with(at, text: str) -> list[str]:
    return [c for img in at.main.get("image") for c in img.captions if text in c]


def check_compare(at, source: str) -> None:
    methods = at.multiselect(key="compare:methods").value
    assert methods == ["guided_backprop", "gradcam", "guided_gradcam", "occlusion"]  # the lecture's figure
    targets = next(w for w in at.multiselect if w.key.startswith("compare:targets:")).value
    assert len(targets) == 2  # top-2 by default
    # a row per method: the input, then one overlay per class
    assert len(at.main.get("image")) == len(methods) * (len(targets) + 1)
    assert {b.label for b in at.get("download_button")} == {
        "Download grid (PNG)",
        "Download heatmaps (zip of NPZ + JSON)",
    }
    at.radio(key="compare:scaling").set_value("Shared by the classes of a method").run()
    ok(at)
    at.multiselect(key="compare:methods").set_value(["gradcam", "saliency"]).run()
    ok(at)
    assert len(at.main.get("image")) == 2 * 3
    assert not auc_captions(at)  # the row of AUCs is optional, off by default
    at.toggle(key="compare:aucs").set_value(True).run()
    ok(at)
    rows = auc_captions(at)
    assert len(rows) == 2 * 2  # one under each panel
    for kind in ("deletion", "insertion"):  # the best of each class is starred, once per class at least
        assert sum(f"{kind} AUC" in r and r.split(f"{kind} AUC ")[1].split(" ")[1] == "★" for r in rows) >= 2
    at.toggle(key="compare:aucs").set_value(False).run()


def auc_captions(at) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("deletion AUC")]


def test_compare_aucs_equal_the_metrics_library(app_test):
    """The numbers under each panel are deletion and insertion of that panel's map, computed here independently."""
    from app import gallery
    from interpret import explain
    from interpret.metrics import deletion, insertion
    from models import load

    at = app_test()
    at.run()
    at.switch_page("views/compare.py").run()
    at.multiselect(key="compare:methods").set_value(["gradcam", "occlusion"]).run()
    targets = next(w for w in at.multiselect if w.key.startswith("compare:targets:")).value
    at.toggle(key="compare:aucs").set_value(True).run()
    ok(at)
    shown = auc_captions(at)
    m = load("fashion-mnist-cnn")
    image, _ = gallery.load_sample(gallery.samples_for(1)[0])
    expected = []
    for method in ("gradcam", "occlusion"):
        for t in targets:
            heat = explain(m, image, method, target=t).heatmap
            d, i = deletion(m, image, heat, target=t).auc, insertion(m, image, heat, target=t).auc
            expected.append(f"deletion AUC {d:.3f}")
            expected.append(f"insertion AUC {i:.3f}")
    numbers = [w for row in shown for w in row.replace(" ★", "").replace(" ↓", "").replace(" ↑", "").split(" · ")]
    assert numbers == expected


def check_filters(at, source: str) -> None:
    layer = next(s for s in at.selectbox if s.key.startswith("filters:layer:"))
    first = {"bundled": "block1_conv1", "zoo": "Conv1", "nested": "base/conv1"}[source]
    assert layer.value == first
    show = next(r for r in at.radio if r.key.startswith("filters:show:"))
    assert ("Colour (RGB)" in show.options) == (source != "bundled")  # grey tiles for a one-channel model
    assert any(c.key == "filters:tiles" for c in at.main.get("plotly_chart"))
    stats = at.dataframe
    assert stats, "the statistics table"
    # a deeper layer, averaged and per input channel
    layer.set_value(layer.options[1]).run()
    ok(at)
    show = next(r for r in at.radio if r.key.startswith("filters:show:"))
    if "One input channel" in show.options:
        show.set_value("One input channel").run()
        ok(at)
        assert any(n.key.startswith("filters:channel:") for n in at.number_input)


def check_activations(at, source: str) -> None:
    assert any("Only the first layer's activation maps" in i.value for i in at.info)
    assert any(c.key == "activations:grid" for c in at.main.get("plotly_chart"))
    assert images_with(at, "over the picture")
    table = at.dataframe[-1].value
    assert {"layer", "receptive field", "jump", "start"} <= set(table.columns)
    if source == "nested":
        row = table[table["layer"] == "base/conv2"].iloc[0]
        assert row["receptive field"] == "5 x 5"
    if source == "bundled":
        row = table[table["layer"] == "block1_conv2"].iloc[0]
        assert row["receptive field"] == "5 x 5"
    at.checkbox(key="activations:sort").check().run()
    ok(at)
    layer = next(s for s in at.selectbox if s.key.startswith("activations:layer:"))
    layer.set_value(layer.options[-1]).run()
    ok(at)
    assert images_with(at, layer.options[-1])
    # the strongest pictures of the channel, among the sample pictures by default, strongest first
    assert at.radio(key="activations:source").value == "The sample pictures"
    ranked = strongest_captions(at)
    assert len(ranked) == 6
    values = [float(c.rsplit(" ", 1)[1]) for c in ranked]
    assert values == sorted(values, reverse=True)
    at.radio(key="activations:rank").set_value("mean").run()
    ok(at)
    assert all(": mean " in c for c in strongest_captions(at))


def strongest_captions(at) -> list[str]:
    """The captions of the strongest pictures ("#rank label: peak value"), in rank order."""
    found = [c.value for c in at.caption if c.value.startswith("#") and (": peak " in c.value or ": mean " in c.value)]
    return sorted(found, key=lambda c: int(c[1:].split(" ")[0]))


def check_patches(at, source: str) -> None:
    patches = [c for img in at.main.get("image") for c in img.captions if " at (" in c]
    assert len(patches) == 8
    ranked = sorted(patches, key=lambda c: int(c[1:].split(" ")[0]))  # captions read "#rank label: value at (r, c)"
    values = [float(c.rsplit(": ", 1)[1].split(" at")[0]) for c in ranked]
    assert values == sorted(values, reverse=True)  # strongest first


def test_strongest_pictures_and_patches_search_the_whole_test_set(app_test):
    """On the bundled test set: the pictures the pages rank first are those an independent pass ranks first."""
    from interpret.activations import layer_activations
    from models import load
    from models.datasets import load_dataset

    m = load("fashion-mnist-cnn")
    layer, channel, count = "block2_conv2", 3, 2000
    ds = load_dataset("fashion-mnist-test", limit=count)
    acts = layer_activations(m, ds._source.images[..., None], layer, batch_size=500)[..., channel]
    peaks = acts.reshape(count, -1).max(axis=1)
    expected = [f"{ds.label_name(i)} {i:05d}" for i in np.argsort(-peaks, kind="stable")[:6]]

    at = app_test()
    at.run()
    at.switch_page("views/activations.py").run()
    at.selectbox(key="activations:layer:fashion-mnist-cnn").set_value(layer).run()
    at.selectbox(key=f"activations:channel:fashion-mnist-cnn:{layer}").set_value(channel).run()
    at.radio(key="activations:source").set_value("Fashion-MNIST test set (10,000 pictures)").run()
    at.number_input(key="activations:count:fashion-mnist-test").set_value(count).run()
    ok(at)
    shown = strongest_captions(at)
    assert [c.split(" ", 1)[1].rsplit(":", 1)[0] for c in shown] == expected
    # Top patches searches the same pictures (the choice is remembered), from the same kept index
    at.switch_page("views/patches.py").run()
    assert at.radio(key="patches:source").value == "Fashion-MNIST test set (10,000 pictures)"
    at.selectbox(key="patches:layer:fashion-mnist-cnn").set_value(layer).run()
    at.number_input(key=f"patches:channel:{layer}").set_value(channel).run()
    at.number_input(key="patches:count:fashion-mnist-test").set_value(count).run()
    ok(at)
    patches = [c for img in at.main.get("image") for c in img.captions if " at (" in c]
    ranked = sorted(patches, key=lambda c: int(c[1:].split(" ")[0]))  # the gallery fills columns, not rows
    assert [c.split(" ", 1)[1].rsplit(":", 1)[0] for c in ranked[:6]] == expected
    assert any("Searched 2,000 pictures of the Fashion-MNIST test set" in c.value for c in at.caption)


def check_feature_visualization(at, source: str) -> None:
    assert any("press Generate" in i.value for i in at.info)
    at.slider(key="featvis:steps").set_value(10)
    next(b for b in at.button if b.label == "Generate").click().run()
    ok(at)
    assert images_with(at, "Maximises channel 0 of")
    assert at.metric and at.metric[0].label == "Target activation"
    at.radio(key="featvis:kind").set_value("A class (its logit)").run()
    at.slider(key="featvis:steps").set_value(10)
    next(b for b in at.button if b.label == "Generate").click().run()
    ok(at)
    assert len(images_with(at, "Maximises ")) == 1


def check_model(at, source: str) -> None:
    assert at.metric[0].label == "Model"
    layers, classes = at.dataframe[-2:]
    assert {"layer", "type", "output shape", "parameters", "receptive field"} <= set(layers.value.columns)
    n_classes = {"bundled": 10, "zoo": 1000, "nested": 3}[source]
    assert len(classes.value) == n_classes
    if source == "nested":
        assert list(classes.value["class"]) == NESTED_CLASSES
        assert "base/bn1" in set(layers.value["layer"])
    assert any("Pictures are resized" in md.value for md in at.markdown)


CHECKS = {
    "compare": check_compare,
    "filters": check_filters,
    "activations": check_activations,
    "patches": check_patches,
    "feature_visualization": check_feature_visualization,
    "model": check_model,
}


@pytest.mark.parametrize("source", ["bundled", "zoo", "nested"])
def test_every_page_works_with_each_kind_of_model(app_test, nested_keras_file, source):
    at = app_test()
    choose_model(at, source, nested_keras_file)
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        ok(at)
        CHECKS[page](at, source)


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_patches_from_an_uploaded_zip_report_bad_entries(app_test):
    rng = np.random.default_rng(0)
    pictures = {f"p{i}.png": encode_png(rng.integers(0, 256, (28, 28), dtype=np.uint8)) for i in range(3)}
    data = make_zip({**pictures, "readme.txt": b"hi", "bad.jpg": b"not a jpeg"})
    at = app_test()
    at.run()
    at.switch_page("views/patches.py").run()
    at.radio(key="patches:source").set_value("A zip of my pictures").run()
    ok(at)
    at.file_uploader(key="patches:zip").set_value(("mine.zip", data, "application/zip")).run()
    ok(at)
    skipped = "\n".join(t.value for t in at.text)
    assert "readme.txt: skipped, not a picture" in skipped
    assert "bad.jpg: skipped" in skipped
    captions = [c for img in at.main.get("image") for c in img.captions if " at (" in c]
    assert len(captions) == 3 and all(c.split(" ")[1].startswith("p") for c in captions)
    # the zip is remembered: the Activations page offers it without a second upload
    at.switch_page("views/activations.py").run()
    ok(at)
    assert at.radio(key="activations:source").value == "A zip of my pictures"
    assert any("mine.zip, uploaded earlier" in c.value for c in at.caption)
    at.switch_page("views/patches.py").run()
    at.file_uploader(key="patches:zip").set_value(("junk.zip", b"no zip here", "application/zip")).run()
    assert not at.exception
    assert any("not a zip file" in e.value for e in at.error)


def test_pages_ask_for_a_model_when_the_upload_is_missing(app_test):
    at = app_test()
    at.run()
    at.radio(key="model_source").set_value("Upload a .keras model").run()
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception
        assert any("Pick a model" in i.value for i in at.info)
