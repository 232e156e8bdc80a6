"""AppTest: the Evaluate page (curves, metrics table, sanity-check strip) on the bundled and on an uploaded model."""

from __future__ import annotations

import json

import pytest

NESTED_CLASSES = ["cat", "dog", "fox"]


def ok(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def upload_nested(at, data: bytes) -> None:
    at.run()
    at.switch_page("views/evaluate.py").run()  # the sidebar's choices then rerun this page
    at.radio(key="model_source").set_value("Upload a .keras model").run()
    at.text_input(key="names_typed").set_value(", ".join(NESTED_CLASSES)).run()
    at.file_uploader(key="model_upload").set_value(("nested.keras", data, "application/octet-stream")).run()
    ok(at)


def charts(at) -> dict[str, list[dict]]:
    """Plotly charts of the main area by key -> their traces."""
    out = {}
    for c in at.main.get("plotly_chart"):
        out[c.key] = json.loads(c.proto.spec)["data"]
    return out


def check_page(at, methods: int, steps: int) -> None:
    found = charts(at)
    assert {"evaluate:deletion_chart", "evaluate:insertion_chart", "evaluate:sanity_chart"} <= set(found)
    for kind in ("deletion", "insertion"):
        names = [t["name"] for t in found[f"evaluate:{kind}_chart"]]
        assert len(names) == methods + 2 and all("AUC" in n for n in names)
        assert any(n.startswith("Random map (baseline)") for n in names)
        assert any(n.startswith("Sobel edges (baseline)") for n in names)
    table = next(d for d in at.dataframe if "best at" in d.value.columns).value
    assert len(table) == methods + 2
    headings = [c for c in table.columns if c != "best at"]
    assert len(headings) == 5 and all("is better" in c for c in headings)
    assert sum(bool(v) for v in table["best at"]) >= 1  # the best of each column is named
    verdicts = [s.value for s in at.success] + [w.value for w in at.warning]
    assert any(" passes:" in v or " fails:" in v for v in verdicts)
    strip = [c for img in at.main.get("image") for c in img.captions]
    assert strip[0] == "original" and len(strip) == steps + 1
    assert any("Petsiuk et al. 2018" in c.value for c in at.caption)
    assert any("Adebayo et al. 2018" in c.value for c in at.caption)


@pytest.mark.slow  # about 7 s: every metric for six maps, four sanity steps, three times
def test_evaluate_page_on_the_bundled_model(app_test):
    at = app_test()
    at.run()
    at.switch_page("views/evaluate.py").run()
    ok(at)
    assert at.multiselect(key="evaluate:methods").value == ["saliency", "gradcam", "guided_backprop", "guided_gradcam"]
    check_page(at, methods=4, steps=4)  # the bundled model: predictions, block3, block2, block1
    at.multiselect(key="evaluate:methods").set_value(["gradcam", "occlusion"]).run()
    ok(at)
    check_page(at, methods=2, steps=4)
    at.selectbox(key="evaluate:sanity:method").set_value("guided_backprop").run()
    at.radio(key="evaluate:sanity:mode").set_value("independent").run()
    at.radio(key="evaluate:sanity:granularity").set_value("layer").run()
    ok(at)
    check_page(at, methods=2, steps=13)  # 6 conv + 6 batch-norm layers + the dense layer


@pytest.mark.slow  # starts the sandboxed worker for the uploaded model
def test_evaluate_page_on_an_uploaded_nested_model(app_test, tiny):
    import tempfile
    from pathlib import Path

    model, _, _ = tiny.nested_sequential(input_shape=(32, 32, 3), classes=3)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "nested.keras"
        model.save(path)
        data = path.read_bytes()
    at = app_test()
    upload_nested(at, data)
    check_page(at, methods=4, steps=3)  # predictions, base/conv2, base/conv1 (+ bn1)
