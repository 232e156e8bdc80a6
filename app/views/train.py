"""Train: build a CNN (or put a new head on a zoo base), train it in a background job, then look inside it.

The training itself runs in a background job of the serving layer (``serving.background``:
its own process, one per session, a server-wide cap), never in this script: the page starts
it, follows it with a fragment that redraws the curves every second, and stops it. Leaving
the page and coming back finds the same job (it is kept by session id), and the settings are
remembered. At the end: test accuracy, per-class accuracy, the confusion matrix, the
misclassified test pictures with Grad-CAM, a ``.keras`` download and "Explain this model",
which puts the model in the sidebar as "Trained in this session".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import trained, widgets
from interpret import explain, render
from models.preprocessing import resize_map
from models.training import (
    AUGMENTATIONS,
    DEFAULT_FOLDER_SIZE,
    DEFAULT_TRANSFER_SIZE,
    FASHION_MNIST,
    TRANSFER_BASES,
    Architecture,
    TrainConfig,
    augmentation_preview,
    describe_architecture,
    imagenet_weights_cached,
    model_input_shape,
)
from serving import compute
from serving.background import JOBS, JobView, TrainingOutcome

FROM_FASHION = "Fashion-MNIST (bundled, offline)"
FROM_ZIP = "Upload a zip of class folders"
BUILD = "Build a CNN"
TRANSFER = "Transfer learning"
HEAD_LABELS = {"flatten": "Flatten + Dense", "gap": "Global average pooling + Dense (CAM applies)"}
IMAGENET = "ImageNet (pretrained)"
RANDOM = "Random weights (demo)"
TRAIN_SIZES = (500, 1_000, 2_000, 5_000, 10_000, 20_000, 54_000)
TEST_SIZES = (200, 1_000, 10_000)
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
PREVIEW_COPIES = 8
ARCHITECTURE_FIELDS = (
    "model",
    "blocks",
    "filters",
    "convs_per_block",
    "batch_norm",
    "dropout",
    "head",
    "base",
    "image_size",
)
MISTAKES_SHOWN = 12
D = TrainConfig()


# ---------------------------------------------------------------- remembered settings
def saved() -> dict[str, Any]:
    """The settings of this session, kept across pages (Streamlit forgets a widget's state on other pages)."""
    return st.session_state.setdefault("train:settings", {})


def keep(name: str, value: Any) -> Any:
    saved()[name] = value
    return value


def remembered(name: str, default: Any) -> Any:
    return saved().get(name, default)


def choose(widget, label: str, options, name: str, default, **kwargs) -> Any:
    """A radio / selectbox / select_slider whose choice survives leaving the page."""
    options = list(options)
    value = remembered(name, default)
    value = value if value in options else default
    if getattr(widget, "__name__", "") == "select_slider":
        return keep(name, widget(label, options, value=value, key=f"train:{name}", **kwargs))
    return keep(name, widget(label, options, index=options.index(value), key=f"train:{name}", **kwargs))


def number(widget, label: str, name: str, default, **kwargs) -> Any:
    return keep(name, widget(label, value=remembered(name, default), key=f"train:{name}", **kwargs))


# ---------------------------------------------------------------- cached helpers
@st.cache_data(max_entries=32, show_spinner="Building the model to count its parameters...")
def architecture(config_items: tuple, input_shape: tuple, classes: int) -> Architecture:
    return describe_architecture(TrainConfig(**dict(config_items)), input_shape, classes)


@st.cache_data(max_entries=32, show_spinner=False)
def preview(picture_key: str, _picture: np.ndarray, augment_items: tuple, seed: int) -> np.ndarray:
    return augmentation_preview(_picture, dict(augment_items), n=PREVIEW_COPIES, seed=seed)


@st.cache_data(max_entries=4, show_spinner=False)
def fashion_sample() -> tuple[np.ndarray, list[str]]:
    from models.bundled import CLASS_FILE
    from models.class_names import read_asset_names
    from models.fashion_mnist_data import load_fashion_mnist

    (x, _), _ = load_fashion_mnist()
    return x[0], read_asset_names(CLASS_FILE)


@st.cache_resource(max_entries=4, show_spinner="Reading the zip of pictures...")
def zip_listing(digest: str, _data: bytes, filename: str) -> tuple[list[str], list[int], np.ndarray | None, list[str]]:
    """(class names, pictures per class, one picture, problems) of an uploaded zip, read by models.datasets."""
    from models.datasets import load_dataset

    ds = load_dataset(_data, name=filename)
    counts = np.bincount(ds.labels[ds.labels >= 0], minlength=len(ds.class_names)).tolist() if ds.labeled else []
    picture = None
    for i in range(min(len(ds), 16)):
        try:
            picture = ds[i]
            break
        except ValueError:
            continue
    return list(ds.class_names), counts, picture, ds.problems[:20]


@st.cache_data(max_entries=64, show_spinner=False)
def mistake_map(digest: str, index: int, target: int, _outcome: TrainingOutcome, _image: np.ndarray) -> np.ndarray:
    return compute.run(_outcome.model, explain, image=_image, method="gradcam", target=target).heatmap


# ---------------------------------------------------------------- drawing
def curves(view: JobView) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    xs = [p["position"] for p in view.points]
    fig.add_trace(
        go.Scatter(x=xs, y=[p["loss"] for p in view.points], name="training", line=dict(color="#1f77b4")), 1, 1
    )
    fig.add_trace(
        go.Scatter(
            x=xs, y=[p["accuracy"] for p in view.points], name="training", line=dict(color="#1f77b4"), showlegend=False
        ),
        1,
        2,
    )
    ve = [e for e in view.epochs if e.get("val_loss") is not None]
    vx = [e["epoch"] + 1 for e in ve]
    style = dict(color="#ff7f0e")
    fig.add_trace(
        go.Scatter(x=vx, y=[e["val_loss"] for e in ve], name="validation", mode="lines+markers", line=style), 1, 1
    )
    fig.add_trace(
        go.Scatter(
            x=vx,
            y=[e["val_accuracy"] for e in ve],
            name="validation",
            mode="lines+markers",
            line=style,
            showlegend=False,
        ),
        1,
        2,
    )
    epochs = max(1, view.config.total_epochs)
    fig.update_xaxes(title_text="epoch", range=[0, epochs])
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def status_line(view: JobView) -> str:
    last = view.last or {}
    epochs = view.config.total_epochs
    parts = [f"**{view.state.capitalize()}**"]
    if last.get("kind") in ("batch", "epoch"):
        parts.append(f"epoch {int(last['epoch']) + 1}/{epochs}")
        parts.append(f"batch {int(last['batch'])}/{int(last['batches'])}")
        if last.get("phase") == "fine-tune":
            parts.append("fine-tuning")
    full = [e["epoch_s"] for e in view.epochs if e.get("epoch_s") and e.get("batch") == e.get("batches")]
    if full:
        parts.append(f"{np.mean(full):.1f} s per epoch")
    if view.active and last.get("eta_s") is not None:
        parts.append(f"about {duration(last['eta_s'])} left")
    parts.append(f"{duration(view.elapsed_s)} so far" if view.active else f"took {duration(view.elapsed_s)}")
    return " · ".join(p for p in parts if p)


def live(session: str, follow: bool = False) -> None:
    """The job: status, progress, curves and Stop; as a fragment (``follow``) it is redrawn every second."""
    job = JOBS.get(session)
    if job is None:
        return
    view = job.view()
    st.markdown(status_line(view))
    last = view.last or {}
    done = (
        (int(last.get("epoch", 0)) + int(last.get("batch", 0)) / max(1, int(last.get("batches") or 1))) if last else 0
    )
    st.progress(min(1.0, done / max(1, view.config.total_epochs)) if view.active else 1.0, text=view.message)
    st.plotly_chart(curves(view), width="stretch", key="train:curves")
    st.caption(
        f"{len(view.points)} points: training loss and accuracy within each epoch, validation at each epoch's end."
    )
    if view.active:
        st.button(
            "Stop",
            on_click=JOBS.stop,
            args=(session,),
            disabled=view.state == "stopping",
            key="train:stop",
            help="Stop after this batch; the model so far is tested and kept.",
        )
    if follow and not view.active:
        st.rerun()  # the job has ended: the whole page again, to draw the results


def confusion_figure(outcome: TrainingOutcome) -> go.Figure:
    names = outcome.class_names
    matrix = outcome.confusion
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=names,
            y=names,
            colorscale="Blues",
            text=matrix,
            texttemplate="%{text}",
            hovertemplate="true %{y}<br>predicted %{x}<br>%{z} pictures<extra></extra>",
        )
    )
    fig.update_layout(
        height=120 + 28 * len(names),
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis_title="predicted",
        yaxis_title="true",
        yaxis=dict(autorange="reversed"),
    )
    return fig


def per_class_figure(outcome: TrainingOutcome) -> go.Figure:
    acc = [0.0 if not math.isfinite(a) else a for a in outcome.per_class_accuracy]
    fig = go.Figure(go.Bar(x=acc, y=outcome.class_names, orientation="h", text=[f"{a:.0%}" for a in acc]))
    fig.update_layout(
        height=80 + 26 * len(acc),
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(range=[0, 1], title="accuracy"),
        yaxis=dict(autorange="reversed"),
    )
    return fig


def results(outcome: TrainingOutcome) -> None:
    st.subheader("Results on the test set")
    acc, count, epochs, params = st.columns(4)
    acc.metric("Test accuracy", f"{outcome.test_accuracy:.1%}")
    count.metric("Test pictures", f"{outcome.test_count:,}")
    epochs.metric("Epochs", outcome.epochs_run, help=outcome.stop_reason or None)
    params.metric("Parameters", f"{outcome.parameters:,}")
    st.caption(
        f"Data: {outcome.data_source}. Time per epoch: {', '.join(f'{s:.1f} s' for s in outcome.epoch_seconds)}"
        + (" (the last one stopped part-way)." if outcome.stop_reason in ("stopped", "time limit") else ".")
    )

    explain_col, download_col = st.columns(2)
    if explain_col.button(
        "Explain this model",
        type="primary",
        on_click=trained.use,
        args=(outcome,),
        key="train:explain",
        help="Puts the model in the sidebar as 'Trained in this session', so every page opens it.",
        width="stretch",
    ):
        st.switch_page("views/explain.py")
    download_col.download_button(
        "Download .keras",
        outcome.keras_bytes,
        file_name="trained_cnn.keras",
        mime="application/octet-stream",
        on_click="ignore",
        key="train:download",
        width="stretch",
    )

    per_class, confusion = st.columns([1, 2])
    with per_class:
        st.markdown("**Accuracy per class**")
        st.plotly_chart(per_class_figure(outcome), width="stretch", key="train:per_class")
    with confusion:
        st.markdown("**Confusion matrix** (rows: true class, columns: predicted)")
        st.plotly_chart(confusion_figure(outcome), width="stretch", key="train:confusion")

    st.markdown("**Misclassified test pictures**, most confident first, with Grad-CAM for the class the model said")
    mistakes = outcome.mistakes[:MISTAKES_SHOWN]
    if not mistakes:
        st.success("No test picture was misclassified.")
        return
    names = outcome.class_names
    columns = st.columns(6)
    for k, mistake in enumerate(mistakes):
        picture = mistake.image[..., 0] if mistake.image.shape[-1] == 1 else mistake.image
        h, w = render.display_size(*picture.shape[:2])
        shown = render.fit(picture, h, w)
        try:
            heat = mistake_map(outcome.digest, mistake.index, mistake.predicted, outcome, picture)
            shown = render.overlay(shown, resize_map(heat, h, w), alpha=0.45)
        except ValueError as exc:  # e.g. the server is busy: show the picture alone
            st.caption(str(exc))
        columns[k % 6].image(
            shown,
            caption=f"true {names[mistake.true]} · said {names[mistake.predicted]} ({mistake.confidence:.0%})",
            width="stretch",
            output_format="PNG",
        )


# ---------------------------------------------------------------- the page
widgets.keep_compiled_functions()
session = trained.session_id()
st.header("Train a CNN")
st.caption(
    "Build a CNN from conv blocks, or put a new head on a pretrained base; train it here and then look inside it "
    "with every page of CNN Lens. Training runs in the background: you may leave this page and come back."
)

data_col, model_col = st.columns(2, gap="large")
with data_col:
    st.subheader("1. Data")
    source = choose(st.radio, "Pictures", (FROM_FASHION, FROM_ZIP), "source", FROM_FASHION, horizontal=True)
    zip_bytes: bytes | None = None
    if source == FROM_FASHION:
        sample, class_names = fashion_sample()
        data_shape: tuple[int, int, int] = (28, 28, 1)
        max_train = choose(
            st.select_slider,
            "Training pictures",
            TRAIN_SIZES,
            "max_train",
            TRAIN_SIZES[-1],
            format_func=lambda n: "all 54,000" if n == TRAIN_SIZES[-1] else f"{n:,}",
            help="6,000 more of the 60,000 training pictures are held out for validation (seeded).",
        )
        max_test = choose(
            st.select_slider,
            "Test pictures",
            TEST_SIZES,
            "max_test",
            TEST_SIZES[-1],
            format_func=lambda n: "all 10,000" if n == TEST_SIZES[-1] else f"{n:,}",
        )
        st.caption("Fashion-MNIST (Xiao et al. 2017): 28x28 grey pictures of 10 kinds of clothing.")
    else:
        upload = st.file_uploader(
            "Zip with one folder per class (cat/1.jpg, dog/2.png, ...)", type=["zip"], key="train:zip"
        )
        max_train, max_test = None, None
        sample, class_names, data_shape = None, [], (DEFAULT_FOLDER_SIZE, DEFAULT_FOLDER_SIZE, 3)
        if upload is not None:
            from app import sources

            zip_bytes = upload.getvalue()
            try:
                class_names, counts, sample, problems = zip_listing(sources.digest(zip_bytes), zip_bytes, upload.name)
            except ValueError as exc:
                st.error(str(exc))
                zip_bytes = None
            else:
                if class_names:
                    st.caption(", ".join(f"{n} ({c})" for n, c in zip(class_names, counts, strict=True)))
                for problem in problems[:5]:
                    st.warning(problem)
        size = choose(st.select_slider, "Picture size", (32, 48, 64, 96, 128), "size", DEFAULT_FOLDER_SIZE)
        data_shape = (size, size, 3)
        st.caption(
            "Split per class with the seed: 70% training, 10% validation, 20% test. Grey pictures are trained in grey."
        )

with model_col:
    st.subheader("2. Model")
    kind = choose(st.radio, "How", (BUILD, TRANSFER), "kind", BUILD, horizontal=True)
    options: dict[str, Any] = {}
    if kind == BUILD:
        left, right = st.columns(2)
        with left:
            options["blocks"] = number(st.slider, "Conv blocks", "blocks", D.blocks, min_value=1, max_value=4)
            options["filters"] = choose(st.select_slider, "Filters in block 1", (8, 16, 32, 64), "filters", D.filters)
            options["convs_per_block"] = number(st.slider, "Convs per block", "convs", 1, min_value=1, max_value=3)
        with right:
            options["batch_norm"] = number(st.checkbox, "Batch normalisation", "batch_norm", True)
            options["dropout"] = number(
                st.slider, "Dropout", "dropout", D.dropout, min_value=0.0, max_value=0.6, step=0.05
            )
            options["head"] = choose(st.radio, "Head", tuple(HEAD_LABELS), "head", D.head, format_func=HEAD_LABELS.get)
        st.caption("Each block: (Conv 3x3 → BatchNorm → ReLU) × n, 2x2 max pooling, dropout; filters double per block.")
    else:
        options["model"] = "transfer"
        options["base"] = choose(
            st.selectbox,
            "Pretrained base",
            tuple(TRANSFER_BASES),
            "base",
            D.base,
            format_func=lambda b: TRANSFER_BASES[b].title,
        )
        options["image_size"] = choose(
            st.select_slider, "Input size", (32, 64, 96, 128, 160, 224), "tsize", DEFAULT_TRANSFER_SIZE
        )
        cached = imagenet_weights_cached(options["base"], options["image_size"])
        weights = choose(
            st.radio, "Base weights", (IMAGENET, RANDOM), "weights", IMAGENET if cached else RANDOM, horizontal=True
        )
        options["base_weights"] = "imagenet" if weights == IMAGENET else None
        if not cached:
            st.warning(
                f"Transfer learning needs the ImageNet weights of {TRANSFER_BASES[options['base']].title}, and they are "
                "not on this server (it downloads them when training starts; offline that fails). "
                "**Random weights** train the same network without them: a labelled demo of the mechanics, "
                "which learns much less."
            )
        left, right = st.columns(2)
        options["fine_tune_layers"] = number(
            left.slider,
            "Fine-tune top layers",
            "ft_layers",
            0,
            min_value=0,
            max_value=60,
            help="0: the base stays frozen.",
        )
        options["fine_tune_epochs"] = number(
            right.slider,
            "Fine-tune epochs",
            "ft_epochs",
            0,
            min_value=0,
            max_value=10,
            disabled=not options["fine_tune_layers"],
        )
        options["fine_tune_factor"] = choose(
            st.select_slider, "Fine-tune learning rate ÷", (2.0, 5.0, 10.0, 20.0, 100.0), "ft_factor", 10.0
        )
        options["dropout"] = number(
            st.slider, "Dropout before the head", "tdropout", 0.2, min_value=0.0, max_value=0.6, step=0.05
        )
        st.caption(
            "The base is frozen and runs in inference mode; a new global-average-pooling + softmax head is trained."
        )
    if source == FROM_ZIP and kind == BUILD:
        options["image_size"] = data_shape[0]

aug_col, opt_col = st.columns(2, gap="large")
with aug_col:
    st.subheader("3. Augmentation")
    augment: dict[str, float] = {}
    names = list(AUGMENTATIONS)
    picks = st.columns(3)
    for i, name in enumerate(names):
        layer, strength, meaning = AUGMENTATIONS[name]
        with picks[i % 3]:
            on = number(st.checkbox, name.capitalize(), f"aug_{name}", False, help=f"keras.layers.{layer}: {meaning}")
            if on:
                augment[name] = (
                    number(
                        st.slider,
                        f"{name} strength",
                        f"aug_{name}_s",
                        strength,
                        min_value=0.01,
                        max_value=0.5,
                        step=0.01,
                    )
                    if strength
                    else 0.0
                )
    seed = int(number(st.number_input, "Seed", "seed", 0, min_value=0, max_value=10_000, step=1))
    if sample is not None:
        picture = np.asarray(sample)
        copies = preview(
            f"{source}:{picture.shape}:{hash(picture.tobytes())}", picture, tuple(sorted(augment.items())), seed
        )
        grid = st.columns(PREVIEW_COPIES)
        for column, copy in zip(grid, copies, strict=True):
            shown = copy[..., 0] if copy.shape[-1] == 1 else copy
            column.image(render.fit(shown, 96, 96), width="stretch", output_format="PNG")
        st.caption(
            "The same picture through the augmentation layers with this seed: what the network sees in training "
            "(never at test time)."
            if augment
            else "No augmentation: every copy is the picture itself."
        )

with opt_col:
    st.subheader("4. Optimiser and schedule")
    left, right = st.columns(2)
    optimizer = choose(
        left.selectbox,
        "Optimiser",
        ("adam", "sgd", "rmsprop"),
        "optimizer",
        D.optimizer,
        format_func={"adam": "Adam", "sgd": "SGD + momentum 0.9", "rmsprop": "RMSprop"}.get,
    )
    learning_rate = choose(
        right.select_slider, "Learning rate", LEARNING_RATES, "lr", D.learning_rate, format_func=lambda v: f"{v:g}"
    )
    schedule = choose(left.selectbox, "Schedule", ("constant", "cosine", "exponential"), "schedule", D.schedule)
    epochs = int(number(right.number_input, "Epochs", "epochs", D.epochs, min_value=1, max_value=50, step=1))
    batch_size = choose(left.select_slider, "Batch size", (16, 32, 64, 128, 256), "batch", D.batch_size)
    early = number(right.checkbox, "Early stopping on validation loss", "early", True)
    patience = int(
        number(
            right.number_input,
            "Patience (epochs)",
            "patience",
            D.patience,
            min_value=1,
            max_value=20,
            disabled=not early,
        )
    )

config = TrainConfig(
    data=FASHION_MNIST if source == FROM_FASHION else "upload.zip",
    optimizer=optimizer,
    learning_rate=float(learning_rate),
    schedule=schedule,
    epochs=epochs,
    batch_size=int(batch_size),
    early_stopping=bool(early),
    patience=patience,
    seed=seed,
    augment=augment,
    max_train=None if max_train in (None, TRAIN_SIZES[-1]) else int(max_train),
    max_test=None if max_test in (None, TEST_SIZES[-1]) else int(max_test),
    **options,
)
classes = len(class_names) or 2
input_shape = model_input_shape(config, data_shape)
with model_col:
    try:
        config.check()
        shape_of = {k: v for k, v in config.to_dict().items() if k in ARCHITECTURE_FIELDS}
        arch = architecture(tuple(sorted(shape_of.items())), input_shape, classes)
    except ValueError as exc:
        st.error(str(exc))
        arch = None
    if arch is not None:
        total, trainable, shape = st.columns(3)
        total.metric("Parameters", f"{arch.total_params:,}")
        trainable.metric("Trained", f"{arch.trainable_params:,}")
        shape.metric("Input", " x ".join(str(v) for v in arch.input_shape))
        with st.expander("Layer summary", expanded=False):
            st.dataframe(
                pd.DataFrame([vars(r) for r in arch.layers]).rename(columns={"output_shape": "output shape"}),
                hide_index=True,
                width="stretch",
            )

st.divider()
job = JOBS.get(session)
view = job.view() if job is not None else None
ready = arch is not None and (source == FROM_FASHION or zip_bytes is not None)
start_col, note_col = st.columns([1, 3])
if start_col.button(
    "Start training",
    type="primary",
    disabled=not ready or (view is not None and view.active),
    key="train:start",
    width="stretch",
):
    try:
        job = JOBS.start(session, config, data=zip_bytes if source == FROM_ZIP else None)
    except ValueError as exc:  # ServerBusy, one job per session, an impossible choice
        st.error(str(exc))
    else:
        view = job.view()
if view is None:
    note_col.caption(
        f"Up to {JOBS.limits.max_jobs} training job(s) run on this server at a time, each for at most "
        f"{duration(JOBS.limits.time_limit_s)}."
    )
    st.stop()

st.subheader("Training")
if view.active:
    st.fragment(live, run_every=1.0)(session, follow=True)
else:
    live(session)
if view.state == "failed":
    st.error(view.error)
elif view.outcome is not None:
    results(view.outcome)
