"""What the Model page shows: the layers with their receptive fields, the input preprocessing, the head, the classes."""

from __future__ import annotations

from dataclasses import dataclass

from interpret.receptive_field import LayerField, receptive_field_table
from models.handle import ModelHandle


@dataclass
class ModelSummary:
    """What the Model page shows: the layers, the input preprocessing, the output head and the classes."""

    name: str
    source: str
    input_shape: tuple[int, int, int]
    preprocessing: str
    preprocessing_description: str
    head: str
    total_params: int
    class_names: list[str]
    layers: list[LayerField]


HEAD_WORDS = {
    "softmax": "softmax over the classes (explained on the logits before it)",
    "sigmoid": "one sigmoid unit, shown as two classes (logits -z/2 and z/2)",
    "multilabel": "independent sigmoids (multi-label)",
    "linear": "raw scores (no squashing)",
}


def model_summary(m: ModelHandle) -> ModelSummary:
    """The layer summary (with receptive fields) and the facts about the model's input and output."""
    return ModelSummary(
        name=m.name,
        source=m.source,
        input_shape=m.input_shape,
        preprocessing=m.preprocessing.name,
        preprocessing_description=m.preprocessing.description,
        head=HEAD_WORDS.get(m.head.kind, m.head.kind),
        total_params=int(m.model.count_params()),
        class_names=list(m.class_names),
        layers=receptive_field_table(m),
    )
