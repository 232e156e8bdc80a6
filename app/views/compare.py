"""Compare: several methods side by side for several classes, like the lecture's Cat/Dog figure."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import sidebar, widgets
from interpret import METHODS, Cancelled, render
from interpret.compare import CompareGrid, compare, default_targets, grid_zip
from interpret.metrics import deletion_insertion_maps
from models import ModelHandle
from serving import compute, superseding

LECTURE_METHODS = ("guided_backprop", "gradcam", "guided_gradcam", "occlusion")
PER_PANEL = "Each panel on its own"
SHARED = "Shared by the classes of a method"


@st.cache_data(max_entries=64, ttl="2h", show_spinner=False)
def top_classes(model_key: str, image_key: str, _model: ModelHandle, _image: np.ndarray, k: int = 5) -> list[int]:
    return compute.run(_model, default_targets, image=_image, k=k)


@st.cache_data(max_entries=8, ttl="1h", show_spinner=False)
def grid_of(
    model_key: str,
    image_key: str,
    methods: tuple,
    targets: tuple,
    layer: str | None,
    params: tuple,
    _model,
    _image,
    _cancel,
) -> CompareGrid:
    bar = st.progress(0.0, text="Computing the grid...")
    progress = superseding.progress_for(lambda f, msg: bar.progress(f, text=msg), _cancel)
    result = compute.run(
        _model,
        compare,
        image=_image,
        methods=list(methods),
        targets=list(targets),
        layer=layer,
        params={name: dict(p) for name, p in params},
        progress=progress,
    )
    bar.empty()
    return result


@st.cache_data(max_entries=8, ttl="1h", show_spinner=False)
def aucs_of(
    model_key: str, image_key: str, grid_key: tuple, _model, _image, _grid: CompareGrid, _cancel
) -> dict[tuple[str, int], tuple[float, float]]:
    """(deletion AUC, insertion AUC) of every panel, each for its own class, from one batched stream."""
    bar = st.progress(0.0, text="Deleting and inserting pixels...")
    progress = superseding.progress_for(lambda f, msg: bar.progress(f, text=msg), _cancel)
    curves = compute.run(
        _model,
        deletion_insertion_maps,
        image=_image,
        heatmaps=[p.heatmap for p in _grid.panels],
        targets=[p.target for p in _grid.panels],
        progress=progress,
    )
    bar.empty()
    return {(p.method, p.target): (d.auc, i.auc) for p, (d, i) in zip(_grid.panels, curves, strict=True)}


def best_per_class(aucs: dict[tuple[str, int], tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """For each class: the lowest deletion AUC and the highest insertion AUC among the methods."""
    best: dict[int, tuple[float, float]] = {}
    for (_, t), (d, i) in aucs.items():
        low, high = best.get(t, (float("inf"), float("-inf")))
        best[t] = (min(low, d), max(high, i))
    return best


def auc_caption(d: float, i: float, best: tuple[float, float]) -> str:
    """The numbers under a panel; ★ where the panel is the best of its class."""
    mark_d, mark_i = (" ★" if d == best[0] else ""), (" ★" if i == best[1] else "")
    return f"deletion AUC {d:.3f}{mark_d} ↓ · insertion AUC {i:.3f}{mark_i} ↑"


# ---------------------------------------------------------------- the page
widgets.keep_compiled_functions()
st.header("Compare methods and classes")
choice = sidebar.require(picture=True)
m, image = choice.model, choice.image
if not m.conv_layers:
    st.warning(f"{m.name} has no layer with a spatial (H, W, C) output, so the CAM methods cannot be compared.")
    st.stop()

top = top_classes(choice.model_key, choice.image_key, m, image)
names = list(METHODS)
with st.expander("What to compare", expanded=True):
    pick_methods, pick_classes = st.columns(2)
    methods = pick_methods.multiselect(
        "Methods (rows)",
        names,
        default=[n for n in LECTURE_METHODS if n in METHODS],
        format_func=lambda n: METHODS[n].title,
        key="compare:methods",
    )
    targets = pick_classes.multiselect(
        "Classes (columns)",
        list(range(m.num_classes)),
        default=top[:2],
        format_func=lambda i: m.class_names[i],
        max_selections=6,
        key=f"compare:targets:{choice.model_key}:{choice.image_key}",
        help="Defaults to the model's two most likely classes.",
    )
    layer_col, scale_col = st.columns(2)
    layer = layer_col.selectbox(
        "Layer for the CAM methods",
        m.conv_layers,
        index=len(m.conv_layers) - 1,
        key=f"compare:layer:{choice.model_key}",
    )
    scaling = scale_col.radio("Colour scale", (PER_PANEL, SHARED), key="compare:scaling", horizontal=True)
    params = {}
    for name in methods:
        if METHODS[name].params:
            with st.popover(f"{METHODS[name].title} parameters"):
                params[name] = widgets.method_params(METHODS[name], "compare")
    alpha, cmap = widgets.overlay_controls("compare")
    show_aucs = st.toggle(
        "Deletion and insertion AUCs under each panel",
        key="compare:aucs",
        help="How faithful each map is to the model: its top pixels are removed (deletion) or kept (insertion) "
        "and the class's probability is followed. Takes 42 forward passes per panel.",
    )

if not methods or not targets:
    st.info("Choose at least one method and one class.")
    st.stop()

cancel = superseding.supersede(st.session_state, "compare:job")
grid_key = (
    tuple(methods),
    tuple(targets),
    layer,
    tuple((name, tuple(sorted(p.items()))) for name, p in params.items()),
)
try:
    grid = grid_of(choice.model_key, choice.image_key, *grid_key, m, image, cancel)
    aucs = aucs_of(choice.model_key, choice.image_key, grid_key, m, image, grid, cancel) if show_aucs else {}
except Cancelled:
    st.stop()
except ValueError as exc:
    st.error(str(exc))
    st.stop()
best = best_per_class(aucs)

shared = scaling == SHARED
scales = render.panel_scales(grid, shared)
fmt = render.display_format(image)
header = st.columns(len(grid.targets) + 1)
header[0].markdown("**Input**")
for col, name in zip(header[1:], grid.target_names, strict=True):
    col.markdown(f"**{name}**")
shown = render.encode(render.display_picture(image), fmt)
for method in grid.methods:
    row = st.columns(len(grid.targets) + 1)
    row[0].image(shown, caption=METHODS[method].title, width="stretch", output_format=fmt)
    for col, t in zip(row[1:], grid.targets, strict=True):
        p = grid.panel(method, t)
        # the same picture the PNG export draws (render.grid_png)
        picture = render.grid_panel(p, image, alpha=alpha, cmap=cmap, vmax=scales[(method, t)])
        col.image(
            render.encode(picture, fmt), caption=f"{p.title}: {p.target_name}", width="stretch", output_format=fmt
        )
        if (method, t) in aucs:
            col.caption(auc_caption(*aucs[(method, t)], best[t]))
if aucs:
    st.caption(
        "Deletion AUC: the class's probability as the map's strongest pixels are blacked out, 5% at a time; a "
        "faithful map makes it fall fast, so lower is better. Insertion AUC: the probability as those pixels are "
        "put back onto a blurred picture; higher is better (Petsiuk et al. 2018, RISE). ★ marks the best of each "
        "class. Compare within a column: a class the model finds unlikely scores low on both. The Evaluate page "
        "draws the curves, with a random and an edge map to beat."
    )
st.caption(
    "Signed maps (e.g. occlusion) use a red-blue scale: red supports the class, blue speaks against it. "
    "Shared colour scale: one scale for the classes of each method, so their strengths compare; methods keep "
    "their own, since their units differ. " + (f"CAM layer: {grid.layer}." if grid.layer else "")
)

png, bundle = st.columns(2)
png.download_button(
    "Download grid (PNG)",
    lambda: render.grid_png(grid, image, shared=shared, alpha=alpha, cmap=cmap),  # drawn when pressed
    file_name="compare_grid.png",
    mime="image/png",
    on_click="ignore",
    key="compare:png",
)
bundle.download_button(
    "Download heatmaps (zip of NPZ + JSON)",
    lambda: grid_zip(grid, model_name=m.name, image_label=choice.image_label),
    file_name="compare_heatmaps.zip",
    mime="application/zip",
    on_click="ignore",
    key="compare:zip",
)
