"""The Explain page on an uploaded .keras model: it runs in the sandboxed worker, and every choice still works."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras_bytes(tmp_path_factory, tiny) -> bytes:
    path = tmp_path_factory.mktemp("upload") / "tiny.keras"
    tiny.conv_softmax(input_shape=(16, 16, 3), classes=3).save(path)
    return path.read_bytes()


def test_uploaded_model_gets_top5_and_a_heatmap_with_typed_class_names(app_test, keras_bytes):
    at = app_test()
    at.run()
    at.radio(key="model_source").set_value("Upload a .keras model").run()
    at.text_input(key="names_typed").set_value("cat, dog, fox")
    at.file_uploader(key="model_upload").upload("tiny.keras", keras_bytes, "application/octet-stream").run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("Input 16×16×3, 3 classes" in c.value for c in at.sidebar.caption)
    target = next(s for s in at.selectbox if s.key.startswith("explain:target:"))
    assert [o.split(" (")[0] for o in target.options] == ["cat", "dog", "fox"]
    layer = next(s for s in at.selectbox if s.key and s.key.startswith("explain:layer:"))
    assert layer.value == "conv2"  # the last conv layer
    captions = [c for img in at.main.get("image") for c in img.captions if " for '" in c]
    assert len(captions) == 1 and "Grad-CAM" in captions[0] and "conv2" in captions[0]

    # a perturbation method reports progress from the worker back to this process
    at.selectbox(key="explain:method").set_value("occlusion").run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    captions = [c for img in at.main.get("image") for c in img.captions if " for '" in c]
    assert len(captions) == 1 and "Occlusion" in captions[0]
