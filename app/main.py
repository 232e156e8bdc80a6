"""CNN Lens: `streamlit run app/main.py`."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import sidebar  # noqa: E402

st.set_page_config(page_title="CNN Lens", page_icon="🔍", layout="wide")

PAGES = [
    st.Page(
        str(ROOT / "app" / "views" / "explain.py"),
        title="Explain",
        icon=":material/local_fire_department:",
        default=True,
    ),
    st.Page(str(ROOT / "app" / "views" / "compare.py"), title="Compare", icon=":material/grid_view:"),
    st.Page(str(ROOT / "app" / "views" / "filters.py"), title="Filters", icon=":material/filter_alt:"),
    st.Page(str(ROOT / "app" / "views" / "activations.py"), title="Activations", icon=":material/layers:"),
    st.Page(str(ROOT / "app" / "views" / "patches.py"), title="Top patches", icon=":material/crop:"),
    st.Page(
        str(ROOT / "app" / "views" / "feature_visualization.py"),
        title="Feature visualisation",
        icon=":material/palette:",
    ),
    st.Page(str(ROOT / "app" / "views" / "model.py"), title="Model", icon=":material/account_tree:"),
]

navigation = st.navigation(PAGES)
sidebar.render()
navigation.run()
