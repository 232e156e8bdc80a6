"""The bundled default: a small Fashion-MNIST CNN shipped with the project (works offline).

The weights are trained by ``python -m models.train_fashion_mnist``; see
``assets/models/fashion_mnist_cnn.md`` for the model card.
"""

from __future__ import annotations

from pathlib import Path

import keras

from models.class_names import ASSETS, read_asset_names
from models.errors import ModelLoadError
from models.handle import ModelHandle
from models.preprocessing import PRESETS

NAME = "fashion-mnist-cnn"
WEIGHTS = ASSETS / "models" / "fashion_mnist_cnn.keras"
CLASS_FILE = "fashion_mnist_classes.txt"


def build_fashion_mnist_cnn(num_classes: int = 10) -> keras.Model:
    """Conv-BN-ReLU blocks, pooling and dropout, then global average pooling and one dense layer (CAM applies)."""
    layers = keras.layers

    def block(x, filters, name):
        for i in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
            x = layers.ReLU(name=f"{name}_relu{i}")(x)
        return x

    inputs = keras.Input(shape=(28, 28, 1), name="image")
    x = block(inputs, 16, "block1")
    x = layers.MaxPooling2D(name="block1_pool")(x)
    x = layers.Dropout(0.2, name="block1_dropout")(x)
    x = block(x, 32, "block2")
    x = layers.MaxPooling2D(name="block2_pool")(x)
    x = layers.Dropout(0.3, name="block2_dropout")(x)
    x = block(x, 64, "block3")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.3, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="fashion_mnist_cnn")


def load_bundled(path: Path = WEIGHTS) -> ModelHandle:
    if not path.exists():
        raise ModelLoadError(
            f"The bundled model file {path} is missing. Retrain it with `python -m models.train_fashion_mnist`."
        )
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return ModelHandle(NAME, model, PRESETS["0..1"], read_asset_names(CLASS_FILE), source="bundled")
