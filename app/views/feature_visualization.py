"""Feature visualisation: a picture made to drive one channel (or one class) as high as it goes."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app import sidebar, widgets
from interpret import Cancelled, render
from interpret.feature_visualization import MAX_STEPS, Visualization, maximize_activation, target_units
from models import ModelHandle
from serving import compute, superseding

CHANNEL = "A channel of a layer"
CLASS = "A class (its logit)"


@st.cache_data(max_entries=32, show_spinner=False)
def channels_of(model_key: str, layer: str, _model: ModelHandle) -> int:
    return compute.run(_model, target_units, layer=layer)


@st.cache_data(max_entries=16, ttl="1h", show_spinner=False)
def visualize(model_key: str, settings: tuple, _model: ModelHandle, _cancel) -> Visualization:
    bar = st.progress(0.0, text="Optimising the picture...")
    progress = superseding.progress_for(lambda f, msg: bar.progress(f, text=msg), _cancel)
    result = compute.run(_model, maximize_activation, progress=progress, **dict(settings))
    bar.empty()
    return result


def objective_chart(vis: Visualization) -> go.Figure:
    fig = go.Figure(go.Scatter(y=[vis.start, *vis.objective], mode="lines"))
    fig.update_layout(height=280, margin=dict(l=0, r=0, t=10, b=0), xaxis_title="step", yaxis_title="target activation")
    return fig


# ---------------------------------------------------------------- the page
widgets.keep_compiled_functions()
st.header("Feature visualisation")
st.caption(
    "Activation maximisation: start from a grey picture and follow the gradient uphill, so that the chosen "
    "channel (its mean over the map) or class logit grows. Regularisation keeps the picture natural: "
    "L2 pulls pixels to grey, total variation smooths, jitter and blur suppress high-frequency noise."
)
choice = sidebar.require(picture=False)
m = choice.model

what, regular = st.columns(2, gap="large")
with what:
    kind = st.radio("Maximise", (CHANNEL, CLASS), key="featvis:kind", horizontal=True)
    if kind == CHANNEL and m.conv_layers:
        layer = st.selectbox(
            "Layer", m.conv_layers, index=len(m.conv_layers) // 2, key=f"featvis:layer:{choice.model_key}"
        )
        n = channels_of(choice.model_key, layer, m)
        unit = st.number_input(f"Channel (0..{n - 1})", 0, n - 1, 0, key=f"featvis:channel:{choice.model_key}:{layer}")
    else:
        layer = None
        unit = st.selectbox(
            "Class", range(m.num_classes), format_func=lambda i: f"{i}: {m.class_names[i]}", key="featvis:class"
        )
with regular, st.form("featvis:form", border=False):
    steps = st.slider("Steps", 10, MAX_STEPS, 100, 10, key="featvis:steps")
    learning_rate = st.number_input("Learning rate", 0.001, 1.0, 0.05, 0.01, format="%.3f", key="featvis:lr")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="featvis:seed")
    l2 = st.number_input("L2 weight", 0.0, 10.0, 0.01, 0.01, format="%.3f", key="featvis:l2")
    tv = st.number_input("Total-variation weight", 0.0, 10.0, 0.05, 0.01, format="%.3f", key="featvis:tv")
    jitter = st.slider("Jitter (pixels)", 0, 16, 4, key="featvis:jitter")
    blur_every = st.slider("Blur every n steps (0: never)", 0, 20, 4, key="featvis:blur_every")
    blur_sigma = st.slider("Blur sigma", 0.0, 3.0, 0.5, 0.1, key="featvis:blur_sigma")
    submitted = st.form_submit_button("Generate", type="primary")

settings = (
    ("layer", layer),
    ("unit", int(unit)),
    ("steps", int(steps)),
    ("learning_rate", float(learning_rate)),
    ("l2", float(l2)),
    ("tv", float(tv)),
    ("jitter", int(jitter)),
    ("blur_every", int(blur_every)),
    ("blur_sigma", float(blur_sigma)),
    ("seed", int(seed)),
)
if submitted:
    st.session_state["featvis:settings"] = (choice.model_key, settings)
requested = st.session_state.get("featvis:settings")
if not requested or requested[0] != choice.model_key:
    st.info("Choose what to maximise and press Generate.")
    st.stop()

cancel = superseding.supersede(st.session_state, "featvis:job")
try:
    vis = visualize(choice.model_key, requested[1], m, cancel)
except Cancelled:
    st.stop()
except ValueError as exc:
    st.error(str(exc))
    st.stop()

target = (
    f"channel {vis.params['unit']} of {vis.params['layer']}"
    if vis.params["layer"]
    else m.class_names[vis.params["unit"]]
)
picture_col, chart_col = st.columns([1, 1])
shown = vis.image[..., 0] if vis.image.shape[-1] == 1 else vis.image
picture_col.image(
    render.encode(render.display_picture(shown)), caption=f"Maximises {target}", width="stretch", output_format="PNG"
)
with chart_col:
    st.plotly_chart(objective_chart(vis), width="stretch", key="featvis:chart")
    st.metric("Target activation", f"{vis.final:.4g}", delta=f"{vis.final - vis.start:+.4g} from the start")
    if vis.note:
        st.warning(vis.note)
    st.download_button(
        "Download picture (PNG)", render.encode(shown), file_name="feature_visualisation.png", mime="image/png"
    )
