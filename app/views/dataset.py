"""Dataset: where does the model fail, and why? Accuracy, the confusion matrix, and the pictures behind it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import dataset_picker, sidebar
from app.shared_store import SharedStore
from interpret import METHODS, Cancelled, render
from interpret.batch import explain_pictures, predict_pixels
from interpret.error_analysis import (
    Confusion,
    Predictions,
    cell_members,
    confident_mistakes,
    confusion,
    most_confident,
    most_confused,
    per_class_accuracy,
)
from models import ModelHandle
from models.datasets import Dataset, model_labels
from serving import compute, superseding

OTHER = "another class"
THUMB = 112  # pixels: the side of a gallery picture
GALLERY_COLUMNS = 6
STORE_ENTRIES = 16  # predictions kept server-wide (per model, dataset and count)


# ---------------------------------------------------------------- data and predictions
@st.cache_resource
def prediction_store() -> SharedStore:
    """Predictions per (model, dataset, count), shared by every session: coming back to the page is instant."""
    return SharedStore(STORE_ENTRIES)


def predict_all(m: ModelHandle, ds: Dataset, count: int, cancel: threading.Event) -> Predictions:
    """Every picture (read and scaled as it comes) through the model, batch by batch, with a progress bar."""
    labels, _ = model_labels(ds, m.class_names) if ds.labeled else (np.full(len(ds), -1, np.int64), "none")
    bar = st.progress(0.0, text=f"Predicting {count:,} pictures...")
    kept, predicted, confidence = [], [], []
    started, done = time.perf_counter(), 0
    for indices, pixels in ds.batches(dataset_picker.batch_size_for(m), m.input_shape, indices=np.arange(count)):
        if cancel.is_set():
            raise Cancelled("superseded")
        if len(indices):
            probs = compute.run(m, predict_pixels, pixels=pixels)
            top = np.argmax(probs, axis=-1)
            kept.append(indices)
            predicted.append(top)
            confidence.append(probs[np.arange(len(top)), top])
        done += dataset_picker.batch_size_for(m)
        rate = min(done, count) / max(time.perf_counter() - started, 1e-9)
        bar.progress(
            min(done, count) / count, text=f"Predicting: {min(done, count):,}/{count:,} pictures ({rate:.0f}/s)"
        )
    bar.empty()
    idx = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    bad = [p for p in ds.problems if p not in ds.listing_problems]
    return Predictions(
        idx.astype(np.int64),
        labels[idx],
        (np.concatenate(predicted) if predicted else np.zeros(0)).astype(np.int64),
        (np.concatenate(confidence) if confidence else np.zeros(0)).astype(np.float32),
        bad,
        time.perf_counter() - started,
    )


@st.cache_data(max_entries=64, ttl="1h", show_spinner=False)
def heatmaps_of(
    model_key: str, dataset_key: str, method: str, indices: tuple, targets: tuple, _m: ModelHandle, _ds: Dataset
) -> np.ndarray:
    """The method's maps (over the model's input) for a few pictures, each for its own class."""
    pixels = np.stack([_ds.model_pixels(i, _m.input_shape) for i in indices])
    return compute.run(_m, explain_pictures, pixels=pixels, method=method, targets=np.asarray(targets))


def class_name(m: ModelHandle, c: int) -> str:
    return OTHER if c < 0 else m.class_names[c]


# ---------------------------------------------------------------- drawing
def confusion_chart(m: ModelHandle, c: Confusion) -> go.Figure:
    rows = [class_name(m, k) for k in c.classes]
    cols = [class_name(m, k) for k in c.columns]
    fractions = c.row_fractions()
    fig = go.Figure(
        go.Heatmap(
            z=fractions.tolist(),  # plain lists: the counts stay readable in the figure's JSON
            x=cols,
            y=rows,
            customdata=c.matrix.tolist(),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            text=c.matrix.tolist(),
            texttemplate="%{text}",
            hoverinfo="skip",
            colorbar={"title": "share of the row", "tickformat": ".0%"},
        )
    )
    # Invisible square markers on the cells: plotly selects scatter points, not heatmap cells.
    ii, jj = np.meshgrid(range(len(rows)), range(len(cols)), indexing="ij")
    fig.add_trace(
        go.Scatter(
            x=[cols[j] for j in jj.ravel()],
            y=[rows[i] for i in ii.ravel()],
            mode="markers",
            marker={"symbol": "square", "size": max(12, min(48, 420 // max(len(rows), 1))), "opacity": 0.0},
            customdata=np.stack([c.matrix.ravel(), fractions.ravel()], axis=-1).tolist(),
            hovertemplate="true %{y}, predicted %{x}: %{customdata[0]} pictures (%{customdata[1]:.1%})<extra></extra>",
            showlegend=False,
        )
    )
    side = max(420, 48 * len(rows) + 160)
    fig.update_layout(
        height=side,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"title": "predicted class", "side": "top", "type": "category"},
        yaxis={"title": "true class", "autorange": "reversed", "type": "category"},
        clickmode="event+select",
        dragmode=False,
    )
    return fig


def gallery(
    m: ModelHandle,
    ds: Dataset,
    p: Predictions,
    positions: np.ndarray,
    method: str,
    target: str,
    model_key: str,
    dataset_key: str,
    where: str,
) -> None:
    """Pictures with a small heatmap each (for the predicted or the true class) and "Open in Explain"."""
    if not len(positions):
        st.caption("No pictures here.")
        return
    indices = tuple(int(v) for v in p.indices[positions])
    classes = p.labels[positions] if target == "true" else p.predicted[positions]
    classes = np.where(classes < 0, p.predicted[positions], classes)
    try:
        maps = heatmaps_of(model_key, dataset_key, method, indices, tuple(int(v) for v in classes), m, ds)
    except ValueError as exc:  # e.g. CAM on a model without global average pooling
        st.warning(str(exc))
        maps = None
    spec = METHODS[method]
    columns = st.columns(GALLERY_COLUMNS)
    for k, (pos, index) in enumerate(zip(positions, indices, strict=True)):
        with columns[k % GALLERY_COLUMNS]:
            shown = render.fit(ds.model_pixels(index, m.input_shape), THUMB, THUMB)
            st.image(shown, width=THUMB, caption=ds.ids[index][-28:])
            if maps is not None:
                st.image(
                    render.method_overlay(spec, shown, maps[k], alpha=0.55, cmap=render.default_cmap(spec.signed)),
                    width=THUMB,
                )
            truth = class_name(m, int(p.labels[pos])) if p.labels[pos] >= 0 else ds.label_name(index) or "?"
            st.caption(f"{class_name(m, int(p.predicted[pos]))} {p.confidence[pos]:.0%} · true: {truth}")
            if st.button(
                "Open in Explain",
                key=f"dataset:open:{where}:{index}",
                on_click=dataset_picker.open_in_explain,
                args=(ds, index),
            ):
                st.switch_page("views/explain.py")


# ---------------------------------------------------------------- the page
st.header("Dataset: where does the model fail?")
st.caption(
    "Predictions over a whole dataset: accuracy, accuracy per class and the confusion matrix. Choose a cell to "
    "see its pictures, most confident first, each with a heatmap of why the model said what it said."
)
choice = sidebar.require(picture=False)
m = choice.model

chosen = dataset_picker.choose(
    "dataset",
    channels=m.input_shape[2],
    samples=False,
    zip_help="one folder per class (cat/1.jpg, dog/2.png, ...); the folder names are the class names",
    label="Dataset",
    horizontal=True,
)
ds, dataset_key = chosen.dataset, chosen.key

if ds.listing_problems:
    with st.expander(f"{len(ds.listing_problems)} entries of the dataset were skipped"):
        st.text("\n".join(ds.listing_problems[:200]))

h, w, _ = m.input_shape
count = dataset_picker.picture_count(
    "Pictures to predict",
    m,
    ds,
    key=f"dataset:count:{dataset_key}:{h}x{w}",
    help=f"All of them for small models; the first {dataset_picker.LARGE_INPUT_DEFAULT} for models with large "
    "inputs (a quick look on a CPU; the first ones hold every class). Raise it to predict them all.",
)
key = (choice.model_key, dataset_key, count)
stopped_key = "dataset:stopped"
cancel = superseding.supersede(st.session_state, "dataset:job")
p = prediction_store().get(key)
if p is None:
    if st.session_state.get(stopped_key) == key:
        st.info("Predictions were stopped.")
        if not st.button("Run the predictions", key="dataset:run", type="primary"):
            st.stop()
        st.session_state.pop(stopped_key, None)
    st.button(
        "Cancel", key="dataset:cancel", on_click=lambda: st.session_state.__setitem__(stopped_key, key)
    )  # a click stops this run at its next batch and the rerun shows "stopped"
    try:
        p = predict_all(m, ds, count, cancel)
    except Cancelled:
        st.stop()
    except ValueError as exc:  # the server is busy, the model refuses the pictures
        st.error(str(exc))
        st.stop()
    prediction_store().put(key, p)
    st.rerun()  # draw the results without the progress bar and the cancel button

labels_how = model_labels(ds, m.class_names)[1] if ds.labeled else "none"
if p.problems:
    with st.expander(f"{len(p.problems)} pictures could not be read and were skipped"):
        st.text("\n".join(p.problems[:200]))
st.caption(f"{len(p.indices):,} pictures predicted in {p.seconds:.1f} s with {m.name}.")

settings, _ = st.columns([2, 3])
with settings:
    names = list(METHODS)
    method = st.selectbox(
        "Heatmaps in the galleries",
        names,
        index=names.index("gradcam"),
        format_func=lambda k: METHODS[k].title,
        key="dataset:method",
        help="Computed for the pictures shown only. Perturbation methods take longer.",
    )
    target = st.radio(
        "Each heatmap explains",
        ("predicted", "true"),
        format_func=lambda k: "the predicted class" if k == "predicted" else "the true class",
        key="dataset:target",
        horizontal=True,
    )
    shown = st.slider("Pictures per gallery", 6, 36, 12, step=6, key="dataset:shown")

if labels_how == "none" or not p.labelled.any():
    st.warning(
        "The dataset's classes are not the model's classes, so accuracy cannot be measured"
        + (f" (dataset: {', '.join(ds.class_names[:6])}...)." if ds.class_names else " (the pictures have no labels).")
        + " Below: what the model predicts."
    )
    counts = pd.Series([m.class_names[c] for c in p.predicted]).value_counts().head(20)
    st.bar_chart(counts, horizontal=True)
    st.subheader("The most confident predictions")
    gallery(m, ds, p, most_confident(p, shown), method, "predicted", choice.model_key, dataset_key, "top")
    st.stop()

if labels_how == "position":
    st.caption(
        "The dataset's folder names are not the model's class names; folder i (in sorted order) is taken as the "
        "model's class i, as Keras' image_dataset_from_directory numbers them."
    )
c = confusion(p)
per_class = per_class_accuracy(p)
known = int(p.labelled.sum())
if known < len(p.indices):
    missing = sorted({ds.label_name(int(i)) for i in p.indices[~p.labelled]} - {""})
    st.caption(
        f"{len(p.indices) - known:,} pictures are left out of the accuracy: their classes are not the model's"
        + (f" ({', '.join(missing[:8])})." if missing else ".")
    )
left, right = st.columns([1, 2], gap="large")
with left:
    st.metric("Accuracy", f"{p.accuracy:.2%}", help=f"Over {known:,} labelled pictures.", border=True)
    table = pd.DataFrame(
        [
            {"class": m.class_names[k], "pictures": n, "correct": ok, "accuracy": ok / n if n else float("nan")}
            for k, (n, ok) in per_class.items()
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "accuracy": st.column_config.ProgressColumn("accuracy", format="percent", min_value=0, max_value=1)
        },
        key="dataset:per_class",
    )
    pairs = most_confused(c)
    if pairs:
        st.markdown("**Most confused**")
        for a, b, n in pairs:
            st.markdown(f"- {class_name(m, a)} → {class_name(m, b)}: {n}")
with right:
    st.subheader("Confusion matrix")
    event = st.plotly_chart(
        confusion_chart(m, c), key="dataset:confusion", on_select="rerun", selection_mode="points", width="stretch"
    )

# The chosen cell: from a click on the matrix, or from the two pickers below (which a click updates).
row_names = [class_name(m, k) for k in c.classes]
col_names = [class_name(m, k) for k in c.columns]
true_key, pred_key = f"dataset:true:{key}", f"dataset:pred:{key}"
points = event.selection.points if event and event.selection else []
if points:
    clicked = (points[0].get("y"), points[0].get("x"))
    if clicked != st.session_state.get("dataset:clicked") and clicked[0] in row_names and clicked[1] in col_names:
        st.session_state["dataset:clicked"] = clicked
        st.session_state[true_key], st.session_state[pred_key] = clicked
if true_key not in st.session_state:
    first = pairs[0] if pairs else (c.classes[0], c.classes[0])
    st.session_state[true_key], st.session_state[pred_key] = class_name(m, first[0]), class_name(m, first[1])

st.subheader("The pictures of a cell")
pick_true, pick_pred = st.columns(2)
true_name = pick_true.selectbox("True class", row_names, key=true_key)
pred_name = pick_pred.selectbox("Predicted class", col_names, key=pred_key)
row, col = c.classes[row_names.index(true_name)], c.columns[col_names.index(pred_name)]
members = cell_members(p, row, col, c.columns)
st.caption(
    f"{len(members):,} pictures of {true_name} predicted as {pred_name}"
    + (f"; the {min(shown, len(members))} most confident:" if len(members) else ".")
)
gallery(m, ds, p, members[:shown], method, target, choice.model_key, dataset_key, "cell")

st.subheader("The most confident mistakes")
gallery(m, ds, p, confident_mistakes(p, shown), method, target, choice.model_key, dataset_key, "mistakes")
