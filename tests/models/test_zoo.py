"""The keras.applications zoo: each entry builds (random weights), and offline ImageNet weights fail clearly."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models import ModelLoadError, load
from models.zoo import ZOO, keras_cache_dir

ROOT = Path(__file__).resolve().parents[2]
RGB = (200.0, 100.0, 50.0)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# What each model's preprocess_input does to one pixel (R, G, B) = (200, 100, 50), by hand.
EXPECTED_PIXEL = {
    "mobilenet_v2": [v / 127.5 - 1 for v in RGB],
    "inception_v3": [v / 127.5 - 1 for v in RGB],
    "vgg16": [RGB[2] - CAFFE_MEAN_BGR[0], RGB[1] - CAFFE_MEAN_BGR[1], RGB[0] - CAFFE_MEAN_BGR[2]],
    "resnet50": [RGB[2] - CAFFE_MEAN_BGR[0], RGB[1] - CAFFE_MEAN_BGR[1], RGB[0] - CAFFE_MEAN_BGR[2]],
    "efficientnet_b0": list(RGB),  # rescaling is inside the model
}
SIZES = {"mobilenet_v2": 224, "vgg16": 224, "resnet50": 224, "efficientnet_b0": 224, "inception_v3": 299}
SLOW = {"vgg16", "resnet50", "inception_v3"}


def test_the_zoo_has_the_required_models():
    assert {"vgg16", "resnet50", "mobilenet_v2", "efficientnet_b0", "inception_v3"} <= set(ZOO)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ZOO])
def test_zoo_entry_builds_with_random_weights(name):
    m = load(name, weights=None)
    try:
        size = SIZES[name]
        assert m.input_shape == (size, size, 3)
        assert m.num_classes == 1000 and m.class_names[0] == "tench"
        assert m.head.kind == "softmax" and m.source == "zoo"
        assert m.conv_layers and m.last_conv_layer in m.conv_layers

        picture = np.empty((150, 170, 3), np.uint8)  # not the model's size: prepare resizes
        picture[...] = np.array(RGB, np.uint8)
        x = m.prepare(picture)
        assert x.shape == (1, size, size, 3)
        np.testing.assert_allclose(x[0, size // 2, size // 2], EXPECTED_PIXEL[name], rtol=1e-5, atol=1e-4)

        probs = m.predict(picture)
        assert probs.shape == (1, 1000) and np.all(np.isfinite(probs))
        np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-4)
        np.testing.assert_allclose(probs, m.model.predict(x, verbose=0), atol=1e-5)
    finally:
        del m
        gc.collect()


def test_cache_dir_is_where_keras_looks(monkeypatch):
    """Keras reads KERAS_HOME when imported; the message must name that folder, not today's variable."""
    from keras.src.backend.config import keras_home

    monkeypatch.setenv("KERAS_HOME", "/somewhere/else")
    assert keras_cache_dir() == os.path.join(keras_home(), "models")


OFFLINE_SCRIPT = """
import sys
from models import ModelLoadError, load
from models.zoo import keras_cache_dir
try:
    load("mobilenet_v2", weights="imagenet")
except ModelLoadError as exc:
    print("CACHE=" + keras_cache_dir())
    print("MESSAGE=" + str(exc))
    sys.exit(3)
print("LOADED")
"""


def test_offline_imagenet_weights_name_the_file_and_the_cache(tmp_path):
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras_home"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    if proc.returncode == 0 and "LOADED" in proc.stdout:
        pytest.skip("this machine is online: the ImageNet weights downloaded")
    assert proc.returncode == 3, proc.stderr[-2000:]
    message = proc.stdout.split("MESSAGE=", 1)[1]
    cache = proc.stdout.split("CACHE=", 1)[1].splitlines()[0]
    assert cache == str(tmp_path / "keras_home" / "models")
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5" in message
    assert cache in message
    assert "MobileNetV2" in message and "offline" in message


def test_unknown_name_lists_the_choices():
    with pytest.raises(ModelLoadError, match="Unknown model 'mobilenet_v9'.*fashion-mnist-cnn.*mobilenet_v2"):
        load("mobilenet_v9")
