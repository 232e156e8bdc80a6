"""The Train page in AppTest: a tiny Fashion-MNIST run of one epoch, its results, and Explain this model."""

from __future__ import annotations

import time

import pytest

from app.trained import TRAINED

pytestmark = pytest.mark.slow
TRAIN_TIMEOUT_S = 300  # a fresh training process imports TensorFlow on a busy 2-core CPU


def _metric(at, label: str):
    return next((m for m in at.metric if m.label == label), None)


def test_train_a_tiny_model_see_its_results_and_explain_it(app_test) -> None:
    at = app_test()
    at.switch_page("views/train.py").run()
    assert not at.exception, at.exception
    assert _metric(at, "Parameters") is not None  # the summary and parameter count before training
    at.select_slider(key="train:max_train").set_value(500).run()
    at.select_slider(key="train:max_test").set_value(200).run()
    at.number_input(key="train:epochs").set_value(1).run()
    at.select_slider(key="train:batch").set_value(16).run()
    at.checkbox(key="train:aug_flip").check().run()
    assert not at.exception, at.exception
    at.button(key="train:start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    # leave the page and come back: the same job, the same settings
    at.switch_page("views/model.py").run()
    at.switch_page("views/train.py").run()
    assert at.select_slider(key="train:max_train").value == 500
    assert any(h.value == "Training" for h in at.subheader)

    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    while _metric(at, "Test accuracy") is None and time.monotonic() < deadline:
        assert not at.error, [e.value for e in at.error]
        time.sleep(2)
        at.run()
    accuracy = _metric(at, "Test accuracy")
    assert accuracy is not None, [m.value for m in at.markdown]
    assert float(accuracy.value.rstrip("%")) > 20  # 500 pictures, one epoch of 32 batches: above chance (10%)
    assert _metric(at, "Test pictures").value == "200"
    assert not at.exception, at.exception
    mistakes = [c for img in at.main.get("image") for c in img.captions if c.startswith("true ")]
    assert mistakes or any("No test picture" in s.value for s in at.success)

    at.button(key="train:explain").click().run()
    assert not at.exception, at.exception
    assert at.sidebar.radio(key="model_source").value == TRAINED
    assert not at.error, [e.value for e in at.error]
    explained = [c for img in at.main.get("image") for c in img.captions if " for '" in c]
    assert explained and "Grad-CAM" in explained[0], explained  # the Explain page drew the trained model's heatmap


def test_transfer_settings_show_the_nested_base_and_offer_random_weights_offline(app_test) -> None:
    from models.training import imagenet_weights_cached

    at = app_test()
    at.switch_page("views/train.py").run()
    at.radio(key="train:kind").set_value("Transfer learning").run()
    assert not at.exception, at.exception
    if not imagenet_weights_cached("mobilenet_v2"):  # offline, as here: a clear message and the demo chosen
        assert any("needs the ImageNet weights" in w.value for w in at.warning)
        assert at.radio(key="train:weights").value == "Random weights (demo)"
    assert _metric(at, "Input").value == "96 x 96 x 3"
    trained, total = _metric(at, "Trained").value, _metric(at, "Parameters").value
    assert int(trained.replace(",", "")) < int(total.replace(",", "")) / 10  # the base is frozen: only the head trains
    at.slider(key="train:ft_layers").set_value(10).run()
    assert not at.slider(key="train:ft_epochs").disabled
