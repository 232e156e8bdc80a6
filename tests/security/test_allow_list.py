"""The allow-list in models.safety names real Keras objects of the right kind, and none that runs code."""

from __future__ import annotations

import types

import keras
import pytest

from models import safety

KINDS = {
    "keras.layers": keras.layers.Layer,
    "keras.initializers": keras.initializers.Initializer,
    "keras.regularizers": keras.regularizers.Regularizer,
    "keras.constraints": keras.constraints.Constraint,
    "keras.dtype_policies": keras.dtype_policies.DTypePolicy,
    "keras.models": keras.Model,
    "keras.optimizers": keras.optimizers.Optimizer,
    "keras.optimizers.schedules": keras.optimizers.schedules.LearningRateSchedule,
    "keras.losses": keras.losses.Loss,
    "keras.metrics": keras.metrics.Metric,
}


def _resolve(dotted: str) -> object:
    obj: object = keras
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("module", sorted(KINDS))
def test_every_allowed_class_is_a_keras_class_of_its_kind(module: str) -> None:
    namespace = _resolve(module)
    for name in safety.ALLOWED_CLASSES[module]:
        obj = getattr(namespace, name, None)
        assert isinstance(obj, type), f"{module}.{name} is not a class in Keras {keras.__version__}"
        assert issubclass(obj, KINDS[module]), f"{module}.{name} is not a {KINDS[module].__name__}"


def test_the_top_level_names_are_models_and_dtype_policies() -> None:
    for name in safety.ALLOWED_CLASSES["keras"]:
        obj = getattr(keras, name, None) or getattr(keras.dtype_policies, name)
        assert isinstance(obj, type) and issubclass(obj, (keras.Model, keras.dtype_policies.DTypePolicy)), name


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (keras.activations, safety.ACTIVATION_FUNCTIONS),
        (keras.losses, safety.LOSS_FUNCTIONS),
        (keras.metrics, safety.METRIC_FUNCTIONS),
    ],
)
def test_every_allowed_function_is_a_keras_function(module: types.ModuleType, names: frozenset[str]) -> None:
    for name in names:
        assert isinstance(getattr(module, name, None), types.FunctionType), f"{module.__name__}.{name}"
    assert not names & {"get", "serialize", "deserialize"}


def test_code_running_and_base_classes_are_not_on_the_list() -> None:
    for name in ("Lambda", "TFSMLayer", "JaxLayer", "FlaxLayer", "TorchModuleWrapper", "Layer", "Wrapper", "Input"):
        assert name not in safety.LAYERS
    assert not safety.FORBIDDEN_CLASSES & safety.ANY_MODULE_CLASSES
    for names in safety.ALLOWED_CLASSES.values():
        assert not names & {"get", "serialize", "deserialize", "Initializer", "Regularizer", "Constraint", "Loss"}


def test_the_list_covers_every_keras_layer_but_the_refused_ones() -> None:
    """A new Keras layer shows up here, to be reviewed before it is allowed."""
    public = {
        name
        for name in dir(keras.layers)
        if isinstance(getattr(keras.layers, name), type) and issubclass(getattr(keras.layers, name), keras.layers.Layer)
    }
    refused = {"Lambda", "TFSMLayer", "JaxLayer", "FlaxLayer", "TorchModuleWrapper", "Layer", "Wrapper"}
    unreviewed = public - refused - safety.LAYERS
    assert not unreviewed, f"Keras {keras.__version__} has layers to review for models.safety.LAYERS: {unreviewed}"
