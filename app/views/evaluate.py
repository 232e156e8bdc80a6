"""Evaluate: can I trust this heatmap? Deletion and insertion curves, a metrics table and a sanity check."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import sidebar, widgets
from interpret import METHODS, Cancelled, render
from interpret.metrics import (
    BASELINES,
    COLUMNS,
    PASS_SPEARMAN,
    PictureEvaluation,
    SanityCheck,
    evaluate_picture,
    sanity_check,
)
from interpret.metrics.evaluation import method_title
from models import ModelHandle
from models.preprocessing import resize_map
from serving import compute, superseding

DEFAULT_METHODS = ("saliency", "gradcam", "guided_backprop", "guided_gradcam")
BASELINE_STYLE = {"random": ("#7f7f7f", "dot"), "edge": ("#8c564b", "dash")}
SUBSTRATE_HELP = "zero: black pixels; mean: the picture's mean colour; blur: the picture blurred."
SIMILARITIES = (
    ("spearman_abs", "|Spearman| (absolute values)"),
    ("spearman", "Spearman"),
    ("ssim", "SSIM"),
    ("hog", "HOG similarity"),
)
STRIP_COLUMNS = 6


@st.cache_data(max_entries=64, ttl="2h", show_spinner=False)
def top_predictions(model_key: str, image_key: str, _model: ModelHandle, _image: np.ndarray, k: int = 5):
    return compute.run(_model, compute.top_k, image=_image, k=k)


@st.cache_data(max_entries=16, ttl="1h", show_spinner=False)
def metrics_of(
    model_key: str,
    image_key: str,
    methods: tuple,
    target: int,
    layer: str | None,
    settings: tuple,
    params: tuple,
    _model: ModelHandle,
    _image: np.ndarray,
    _cancel: threading.Event,
) -> PictureEvaluation:
    """Every metric of the chosen methods and both baselines on the picture, cached on every choice."""
    bar = st.progress(0.0, text="Scoring the maps...")
    progress = superseding.progress_for(lambda f, msg: bar.progress(f, text=msg or "Scoring the maps..."), _cancel)
    result = compute.run(
        _model,
        evaluate_picture,
        image=_image,
        methods=[*methods, *BASELINES],
        target=target,
        layer=layer,
        params={name: dict(p) for name, p in params},
        progress=progress,
        **dict(settings),
    )
    bar.empty()
    return result


@st.cache_data(max_entries=16, ttl="1h", show_spinner=False)
def sanity_of(
    model_key: str,
    image_key: str,
    method: str,
    target: int,
    layer: str | None,
    mode: str,
    granularity: str,
    params: tuple,
    _model: ModelHandle,
    _image: np.ndarray,
    _cancel: threading.Event,
) -> SanityCheck:
    bar = st.progress(0.0, text="Randomising a copy of the model...")
    progress = superseding.progress_for(lambda f, msg: bar.progress(f, text=msg or "Sanity check..."), _cancel)
    result = compute.run(
        _model,
        sanity_check,
        image=_image,
        method=method,
        target=target,
        mode=mode,
        layer=layer if method in METHODS and METHODS[method].uses_layer else None,
        granularity=granularity,
        progress=progress,
        **dict(params),
    )
    bar.empty()
    return result


def curve_chart(result: PictureEvaluation, kind: str) -> go.Figure:
    """One line per method (baselines dashed), AUC in the legend."""
    fig = go.Figure()
    for name in result.methods:
        curve = result.curves.get(name, {}).get(kind)
        if curve is None:
            continue
        colour, dash = BASELINE_STYLE.get(name, (None, "solid"))
        fig.add_trace(
            go.Scatter(
                x=curve.fractions,
                y=curve.scores,
                mode="lines+markers",
                name=f"{method_title(name)} (AUC {curve.auc:.3f})",
                line=dict(dash=dash, color=colour, width=1.5 if name in BASELINES else 2.5),
                marker=dict(size=4),
            )
        )
    column = COLUMNS[f"{kind}_auc"]
    what = "removed" if kind == "deletion" else "kept (the rest blurred)"
    score = result.settings.get("score", "probability")
    fig.update_layout(
        title=f"{kind.capitalize()}: AUC, {column.direction}",
        height=430,
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title=f"fraction of pixels {what}", range=[0, 1]),
        yaxis=dict(title=f"{score} of '{result.target_name}'"),
        legend=dict(orientation="h", yanchor="top", y=-0.28),
    )
    return fig


def metrics_table(result: PictureEvaluation) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Rows: methods then baselines; columns: the metrics, each heading saying which way is better."""
    best = {c: result.best(c) for c in result.columns}
    rows = []
    for name in result.methods:
        row = {"method": method_title(name)}
        for c in result.columns:
            row[COLUMNS[c].heading] = result.values[name][c]
        row["best at"] = ", ".join(COLUMNS[c].title for c in result.columns if name in best[c])
        rows.append(row)
    return pd.DataFrame(rows).set_index("method"), best


def mark_best(frame: pd.DataFrame, result: PictureEvaluation, best: dict[str, list[str]]):
    """Bold, green-backed best value per column (which way counts as best comes from COLUMNS)."""
    titles = [method_title(n) for n in result.methods]
    winners = {COLUMNS[c].heading: {method_title(n) for n in best[c]} for c in result.columns}

    def style(column: pd.Series) -> list[str]:
        chosen = winners.get(column.name, set())
        return ["font-weight: bold; background-color: #c7e9c0" if t in chosen else "" for t in titles]

    return frame.style.apply(style, axis=0).format(precision=3, na_rep="n/a")


def similarity_chart(check: SanityCheck) -> go.Figure:
    labels = ["original", *[f"+ {s.block}" if check.mode == "cascading" else s.block for s in check.steps]]
    fig = go.Figure()
    for key, title in SIMILARITIES:
        values = [1.0, *[getattr(s, key) for s in check.steps]]
        fig.add_trace(go.Scatter(x=labels, y=values, mode="lines+markers", name=title))
    fig.add_hline(y=PASS_SPEARMAN, line_dash="dash", line_color="#d62728", annotation_text="pass below (|Spearman|)")
    fig.update_layout(
        height=340,
        margin=dict(l=10, r=10, t=30, b=10),
        yaxis=dict(title="similarity to the original map", range=[-1.05, 1.05]),
        xaxis=dict(title="cascading randomisation, from the logits down" if check.mode == "cascading" else "block"),
        legend=dict(orientation="h", yanchor="top", y=-0.35),
    )
    return fig


def map_picture(image: np.ndarray, heatmap: np.ndarray, signed: bool) -> np.ndarray:
    h, w = render.display_size(*image.shape[:2])
    shown = render.fit(image, h, w)
    heat = resize_map(heatmap, h, w)
    if signed:
        return render.signed_overlay(shown, heat, alpha=0.6)
    return render.overlay(shown, heat, alpha=0.6, cmap="jet")


# ---------------------------------------------------------------- the page
st.header("Can I trust this heatmap?")
choice = sidebar.require(picture=True)
m, image = choice.model, choice.image
st.caption(
    "Each method draws a different picture. These tests ask whether a map follows what the model actually "
    "uses: change the pixels it points at and watch the score, and randomise the model and see if the map notices. "
    "A random map and the picture's edges are scored too: the floor a method must beat."
)
try:
    top = top_predictions(choice.model_key, choice.image_key, m, image)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
top_names = {i: p for i, _, p in top}

names = list(METHODS)
with st.expander("What to evaluate", expanded=True):
    pick, target_col = st.columns([2, 1])
    methods = pick.multiselect(
        "Methods",
        names,
        default=[n for n in DEFAULT_METHODS if n in METHODS],
        format_func=lambda n: METHODS[n].title,
        key="evaluate:methods",
        help="The random map and the Sobel edge map are always added as baselines.",
    )
    target = target_col.selectbox(
        "Target class",
        range(m.num_classes),
        index=top[0][0],
        format_func=lambda i: f"{m.class_names[i]} ({top_names[i]:.0%})" if i in top_names else m.class_names[i],
        key=f"evaluate:target:{choice.model_key}:{choice.image_key}",
        help="Defaults to the model's top-1 class.",
    )
    steps_col, score_col, del_col, ins_col = st.columns(4)
    steps = steps_col.slider("Steps", 5, 50, 20, 5, key="evaluate:steps", help="Points on each curve, minus one.")
    score = score_col.radio("Score", ("probability", "logit"), key="evaluate:score", horizontal=True)
    deletion_substrate = del_col.selectbox(
        "Deleted pixels become", ("zero", "mean", "blur"), index=0, key="evaluate:deletion", help=SUBSTRATE_HELP
    )
    insertion_substrate = ins_col.selectbox(
        "Insertion starts from", ("blur", "zero", "mean"), index=0, key="evaluate:insertion", help=SUBSTRATE_HELP
    )
    layer = None
    if m.conv_layers and any(METHODS[n].uses_layer for n in methods):
        layer = st.selectbox(
            "Layer for the CAM methods",
            m.conv_layers,
            index=len(m.conv_layers) - 1,
            key=f"evaluate:layer:{choice.model_key}",
        )
    params = {}
    for name in methods:
        if METHODS[name].params:
            with st.popover(f"{METHODS[name].title} parameters"):
                params[name] = widgets.method_params(METHODS[name], "evaluate")

if not methods:
    st.info("Choose at least one method.")
    st.stop()

cancel = superseding.supersede(st.session_state, "evaluate:job")
settings = dict(
    steps=steps, score=score, deletion_substrate=deletion_substrate, insertion_substrate=insertion_substrate
)
try:
    result = metrics_of(
        choice.model_key,
        choice.image_key,
        tuple(methods),
        target,
        layer,
        tuple(sorted(settings.items())),
        tuple((name, tuple(sorted(p.items()))) for name, p in params.items()),
        m,
        image,
        cancel,
    )
except Cancelled:  # a newer choice took over
    st.stop()
except ValueError as exc:
    st.error(str(exc))
    st.stop()

for name, message in result.errors.items():
    st.warning(f"{method_title(name)}: {message}")

st.subheader(f"Deletion and insertion for '{result.target_name}'")
left, right = st.columns(2)
left.plotly_chart(curve_chart(result, "deletion"), width="stretch", key="evaluate:deletion_chart")
left.caption(f"{COLUMNS['deletion_auc'].sentence} *{COLUMNS['deletion_auc'].paper}.*")
right.plotly_chart(curve_chart(result, "insertion"), width="stretch", key="evaluate:insertion_chart")
right.caption(f"{COLUMNS['insertion_auc'].sentence} *{COLUMNS['insertion_auc'].paper}.*")

st.subheader("All metrics on this picture")
frame, best = metrics_table(result)
st.dataframe(mark_best(frame, result, best), width="stretch", key="evaluate:table")
seconds = sum(result.explain_seconds.values())
st.caption(
    "Every column says which way is better; the best value in each (baselines included) is in bold on green and "
    f"named under 'best at' (none where all are equal). One picture is a small sample: `cnn-lens evaluate` averages over many. "
    f"Explaining took {seconds:.2f} s, scoring the perturbed copies {result.score_seconds:.2f} s."
)
with st.expander("What each test means", expanded=False):
    for key in ("deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence", "mufidelity"):
        c = COLUMNS[key]
        st.markdown(f"- **{c.title}** ({c.direction}): {c.sentence} *{c.paper}.*")

# ---------------------------------------------------------------- the sanity check
st.subheader("Sanity check: does the map depend on the model?")
st.caption(f"{COLUMNS['sanity_spearman_abs'].sentence} *{COLUMNS['sanity_spearman_abs'].paper}.*")
sanity_names = [*METHODS, *BASELINES]
pick_method, pick_mode, pick_level = st.columns(3)
sanity_method = pick_method.selectbox(
    "Method",
    sanity_names,
    index=sanity_names.index("gradcam") if "gradcam" in sanity_names else 0,
    format_func=method_title,
    key="evaluate:sanity:method",
)
mode = pick_mode.radio("Randomisation", ("cascading", "independent"), key="evaluate:sanity:mode", horizontal=True)
granularity = pick_level.radio("Randomise by", ("block", "layer"), key="evaluate:sanity:granularity", horizontal=True)
sanity_cancel = superseding.supersede(st.session_state, "evaluate:sanity")
try:
    check = sanity_of(
        choice.model_key,
        choice.image_key,
        sanity_method,
        target,
        layer,
        mode,
        granularity,
        tuple(sorted(params.get(sanity_method, {}).items())),
        m,
        image,
        sanity_cancel,
    )
except Cancelled:
    st.stop()
except ValueError as exc:
    st.error(str(exc))
    st.stop()

title = method_title(sanity_method)
final = check.steps[-1]
if check.passed:
    st.success(
        f"{title} passes: once the weights are random its map has a rank correlation of {final.spearman_abs:.2f} "
        f"(|Spearman|) with the original, below {PASS_SPEARMAN}. The map depends on what the model learned."
    )
else:
    st.warning(
        f"{title} fails: with random weights its map still has a rank correlation of {final.spearman_abs:.2f} "
        f"(|Spearman|, pass below {PASS_SPEARMAN}) with the original. It shows the picture more than the model, "
        "like an edge detector (Adebayo et al. 2018 found this for guided backprop and guided Grad-CAM)."
    )
st.plotly_chart(similarity_chart(check), width="stretch", key="evaluate:sanity_chart")
signed = sanity_method in METHODS and METHODS[sanity_method].signed
maps = [
    ("original", check.original),
    *[(f"+ {s.block}" if mode == "cascading" else s.block, s.heatmap) for s in check.steps],
]
for start in range(0, len(maps), STRIP_COLUMNS):
    row = st.columns(STRIP_COLUMNS)
    for col, (label, heat) in zip(row, maps[start : start + STRIP_COLUMNS], strict=False):
        col.image(map_picture(image, heat, signed), caption=label, width="stretch")
st.caption(
    f"Each map has its own colour scale. Randomised: {len(final.randomised)} layers with weights "
    f"({'all of them' if mode == 'cascading' else 'one block at a time'}), on a copy; your model is unchanged. "
    f"{check.seconds:.1f} s."
)
