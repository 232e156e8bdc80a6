"""CNN Lens: the pages and the sidebar. Start it with `cnn-lens app` (the package must be installed)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import sidebar

VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="CNN Lens", page_icon="🔍", layout="wide")

PAGES = [
    st.Page(
        str(VIEWS / "explain.py"),
        title="Explain",
        icon=":material/local_fire_department:",
        default=True,
    ),
    st.Page(str(VIEWS / "compare.py"), title="Compare", icon=":material/grid_view:"),
    st.Page(str(VIEWS / "evaluate.py"), title="Evaluate", icon=":material/fact_check:"),
    st.Page(str(VIEWS / "dataset.py"), title="Dataset", icon=":material/table_chart:"),
    st.Page(str(VIEWS / "filters.py"), title="Filters", icon=":material/filter_alt:"),
    st.Page(str(VIEWS / "activations.py"), title="Activations", icon=":material/layers:"),
    st.Page(str(VIEWS / "patches.py"), title="Top patches", icon=":material/crop:"),
    st.Page(
        str(VIEWS / "feature_visualization.py"),
        title="Feature visualisation",
        icon=":material/palette:",
    ),
    st.Page(str(VIEWS / "model.py"), title="Model", icon=":material/account_tree:"),
    st.Page(str(VIEWS / "train.py"), title="Train", icon=":material/model_training:"),
]

navigation = st.navigation(PAGES)
sidebar.render()
navigation.run()
