"""Model: its layers (with receptive fields), how pictures are prepared for it, and its classes."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import sidebar
from interpret.model_summary import ModelSummary, model_summary
from models import ModelHandle
from serving import compute


@st.cache_data(max_entries=16, show_spinner="Reading the model...")
def summary_of(model_key: str, _model: ModelHandle) -> ModelSummary:
    return compute.run(_model, model_summary)


def axis_text(values: tuple) -> str:
    return " x ".join(f"{v:g}" for v in values)


def layer_frame(s: ModelSummary) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "layer": r.path,
                "type": r.type,
                "output shape": " x ".join(str(d) for d in r.output_shape),
                "parameters": r.params,
                "receptive field": "whole input" if r.covers_input else axis_text(r.size),
                "jump": axis_text(r.jump),
                "notes": "; ".join(r.notes),
            }
            for r in s.layers
        ]
    )


# ---------------------------------------------------------------- the page
st.header("Model")
choice = sidebar.require(picture=False)
try:
    s = summary_of(choice.model_key, choice.model)
except ValueError as exc:
    st.error(str(exc))
    st.stop()

name, shape, params, classes = st.columns([2, 1, 1, 1])
name.metric("Model", s.name)
shape.metric("Input (H x W x C)", " x ".join(str(d) for d in s.input_shape))
params.metric("Parameters", f"{s.total_params:,}")
classes.metric("Classes", len(s.class_names))

st.subheader("Input preprocessing")
st.markdown(
    f"Pictures are resized to {s.input_shape[0]}x{s.input_shape[1]}, turned "
    f"{'grey' if s.input_shape[2] == 1 else 'RGB'}, then scaled: **{s.preprocessing}**, "
    f"{s.preprocessing_description}."
)
st.markdown(f"Output: {s.head}.")

st.subheader("Layers")
st.caption("Nested sub-models are listed with their path (outer/inner). Receptive field and jump in input pixels.")
st.dataframe(layer_frame(s), hide_index=True, width="stretch", height=420)

st.subheader("Classes")
st.dataframe(pd.DataFrame({"index": range(len(s.class_names)), "class": s.class_names}), hide_index=True, height=300)
