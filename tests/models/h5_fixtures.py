"""Keras 2 style ``.h5`` files built in the tests (no downloads).

Keras 3 still writes the legacy format (``model.save("x.h5")``); ``to_keras2`` then edits the file
with h5py so it carries what Keras 2 (and Teachable Machine's exporter) wrote: no ``module`` or
``registered_name`` keys, dtype strings, ``batch_input_shape``, ``DepthwiseConv2D(groups=1)``,
``{"class_name": "__tuple__"}`` tuples, the old ``inbound_nodes`` lists, ``:0`` weight names, a
``keras_version`` of 2.x and a ``Custom>Adam`` optimizer in ``training_config``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

L = keras.layers


def teachable_like(input_shape=(16, 16, 3), classes: int = 3, seed: int = 0) -> keras.Model:
    """A small Teachable-Machine-shaped model: a functional base with DepthwiseConv2D nested in Sequentials."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=input_shape, name="input_1")
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="Conv1")(inp)
    x = L.BatchNormalization(name="bn_Conv1")(x)
    x = L.ReLU(6.0, name="Conv1_relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="expanded_conv_depthwise")(x)
    x = L.BatchNormalization(name="expanded_conv_depthwise_BN")(x)
    x = L.ReLU(6.0, name="out_relu")(x)
    base = keras.Model(inp, x, name="model1")
    # non-trivial BatchNorm statistics, so the weights really have to arrive
    rng = np.random.default_rng(seed)
    for layer in base.layers:
        if isinstance(layer, L.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * 1.3, b + 0.1, m + rng.normal(0, 0.1, m.shape), v * 1.7])
    features = keras.Sequential([keras.Input(shape=input_shape), base, L.GlobalAveragePooling2D()], name="sequential_1")
    head = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            L.Dense(8, activation="relu", name="dense_Dense1"),
            L.Dense(classes, activation="softmax", name="dense_Dense2"),
        ],
        name="sequential_3",
    )
    return keras.Sequential([keras.Input(shape=input_shape), features, head], name="sequential_4")


def _keras2_node(node: Any) -> Any:
    """Keras 3 -> Keras 2 wording of one config subtree."""
    if isinstance(node, list):
        return [_keras2_node(v) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("class_name") == "DTypePolicy":
        return node["config"]["name"]
    out = {k: _keras2_node(v) for k, v in node.items() if k not in ("module", "registered_name", "build_config")}
    cls = out.get("class_name")
    cfg = out.get("config")
    if isinstance(cfg, dict):
        if cls == "InputLayer" and "batch_shape" in cfg:
            cfg["batch_input_shape"] = cfg.pop("batch_shape")
            cfg.pop("optional", None)
        if cls == "DepthwiseConv2D":
            cfg["groups"] = 1  # what Teachable Machine's Keras 2 export writes (teachablemachine-community #403)
        fn = cfg.get("function")
        if cls == "Lambda" and isinstance(fn, dict) and fn.get("class_name") == "__lambda__":
            inner = fn["config"]  # Keras 2 wrote [base64 marshal, defaults, closure] and a function_type
            cfg["function"] = [inner["code"], inner.get("defaults"), inner.get("closure")]
            cfg["function_type"] = "lambda"
        if "kernel_size" in cfg:
            cfg["kernel_size"] = {"class_name": "__tuple__", "items": list(cfg["kernel_size"])}
    if "inbound_nodes" in out and isinstance(out["inbound_nodes"], list):
        old = []
        for n in node["inbound_nodes"]:
            if isinstance(
                n, dict
            ):  # {"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}]}
                args = n.get("args", [])
                tensors = args[0] if args and isinstance(args[0], list) else args
                old.append([[*t["config"]["keras_history"], {}] for t in tensors])
            else:
                old.append(n)
        out["inbound_nodes"] = old
    return out


def to_keras2(path: Path) -> Path:
    """Rewrite a Keras 3 legacy .h5 in place so it looks like a Keras 2 file."""
    import h5py

    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        h5.attrs["model_config"] = json.dumps(_keras2_node(config)).encode()
        h5.attrs["keras_version"] = b"2.4.0"
        training = {
            "loss": "categorical_crossentropy",
            "metrics": ["accuracy"],
            "weighted_metrics": None,
            "loss_weights": None,
            "optimizer_config": {"class_name": "Custom>Adam", "config": {"name": "Adam", "learning_rate": 0.001}},
        }
        h5.attrs["training_config"] = json.dumps(training).encode()
        weights = h5["model_weights"]
        weights.attrs["keras_version"] = b"2.4.0"

        def rename(group: Any) -> None:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
            if names:
                for n in names:
                    group.move(n, n + ":0")
                group.attrs["weight_names"] = [(n + ":0").encode() for n in names]

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Group) and "weight_names" in obj.attrs:
                rename(obj)

        weights.visititems(visit)
    return path


def save_h5(model: keras.Model, path: Path, keras2: bool = False) -> Path:
    model.save(path)
    return to_keras2(path) if keras2 else path
