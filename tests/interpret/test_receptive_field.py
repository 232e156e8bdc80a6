"""Receptive fields checked by hand on the course's examples."""

from __future__ import annotations

import keras
import pytest

from interpret.receptive_field import (
    Field,
    field_box,
    layer_receptive_field,
    model_fields,
    receptive_field_table,
    union,
)

L = keras.layers


def stacked_convs(n: int, padding: str = "valid") -> keras.Model:
    return keras.Sequential(
        [keras.Input((32, 32, 3))] + [L.Conv2D(2, 3, padding=padding, name=f"c{i}") for i in range(n)]
    )


def test_two_stacked_3x3_convs_see_5x5_and_three_see_7x7():
    fields = model_fields(stacked_convs(3))
    assert fields["c0"].size == (3, 3)
    assert fields["c1"].size == (5, 5)
    assert fields["c2"].size == (7, 7)
    assert fields["c2"].jump == (1, 1)


def test_same_padding_moves_the_start_into_the_padding():
    fields = model_fields(stacked_convs(2, padding="same"))
    assert fields["c1"].size == (5, 5)
    assert fields["c1"].start == (-2, -2)  # unit 0 is centred on pixel 0


def test_dilated_causal_stack_sees_16_time_steps():
    """The course's WaveNet-style stack: kernel 2, dilations 1, 2, 4, 8, causal padding."""
    model = keras.Sequential(
        [keras.Input((64, 1))]
        + [L.Conv1D(4, 2, padding="causal", dilation_rate=d, name=f"dil{d}") for d in (1, 2, 4, 8)]
    )
    fields = model_fields(model)
    assert [fields[f"dil{d}"].size for d in (1, 2, 4, 8)] == [(2,), (4,), (8,), (16,)]
    # 15 steps back plus the present: unit t sees t-15 .. t
    assert fields["dil8"].start == (-15,)
    assert field_box(fields["dil8"], (20,)) == ((5, 21),)


def test_strides_and_pooling_multiply_the_jump():
    model = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            L.Conv2D(2, 5, strides=2, name="s2"),
            L.MaxPooling2D(2, name="pool"),
            L.Conv2D(2, 3, name="after"),
        ]
    )
    f = model_fields(model)
    assert f["s2"].size == (5, 5) and f["s2"].jump == (2, 2)
    assert f["pool"].size == (7, 7) and f["pool"].jump == (4, 4)  # 5 + (2-1)*2
    assert f["after"].size == (15, 15) and f["after"].jump == (4, 4)  # 7 + 2*4


def test_zero_padding_depthwise_and_separable_layers():
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            L.ZeroPadding2D(((1, 0), (2, 0)), name="pad"),
            L.DepthwiseConv2D(3, name="dw"),
            L.SeparableConv2D(2, 3, dilation_rate=2, name="sep"),
            L.GlobalAveragePooling2D(name="gap"),
        ]
    )
    f = model_fields(model)
    assert f["pad"].start == (-1, -2) and f["pad"].size == (1, 1)
    assert f["dw"].size == (3, 3) and f["dw"].start == (-1, -2)
    assert f["sep"].size == (7, 7)  # dilated 3x3 spans 5
    assert f["gap"].covers_input and f["gap"].size == (16, 16)


def test_vgg16_block5_conv3_sees_196_pixels():
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    f = model_fields(vgg)
    assert f["block1_conv2"].size == (5, 5)
    assert f["block1_pool"].size == (6, 6)
    assert f["block5_conv3"].size == (196, 196)
    assert f["block5_conv3"].jump == (16, 16)


def test_branches_take_the_union_of_paths():
    inp = keras.Input((20, 20, 1))
    a = L.Conv2D(2, 1, name="one")(inp)
    b = L.Conv2D(2, 5, padding="same", name="five")(inp)
    out = L.Add(name="add")([a, b])
    f = model_fields(keras.Model(inp, out))
    assert f["add"].size == (5, 5) and f["add"].start == (-2, -2)
    assert union([Field((1,), (1,), (0,)), Field((5,), (1,), (-2,))]).size == (5,)


def test_nested_models_are_reached(tiny, handle_of):
    model, _, _ = tiny.nested_sequential()
    m = handle_of(model)
    rows = {r.path: r for r in receptive_field_table(m)}
    assert rows["base/conv1"].size == (3, 3)
    assert rows["base/conv2"].size == (5, 5)
    assert rows["base"].size == (5, 5)  # a sub-model reports its output's field
    assert rows["base/conv2"].output_shape == (8, 8, 6)
    assert rows["base/conv1"].params == 3 * 3 * 3 * 4 + 4
    assert rows["gap"].covers_input
    assert layer_receptive_field(m, "base/relu1").size == (3, 3)
    with pytest.raises(ValueError, match="No layer"):
        layer_receptive_field(m, "nope")


def test_model_summary_names_preprocessing_head_and_classes(tiny, handle_of):
    from interpret.model_summary import model_summary

    m = handle_of(tiny.conv_softmax(), class_names=["a", "b", "c"], preprocessing="-1..1")
    s = model_summary(m)
    assert s.input_shape == (12, 12, 3) and s.preprocessing == "-1..1"
    assert "softmax" in s.head and s.class_names == ["a", "b", "c"]
    assert s.total_params == sum(r.params for r in s.layers)
    assert [r.path for r in s.layers] == ["conv1", "conv2", "gap", "predictions"]
