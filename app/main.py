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
    st.Page(str(ROOT / "app" / "pages" / "explain.py"), title="Explain", icon="🔥", default=True),
    st.Page(str(ROOT / "app" / "pages" / "compare.py"), title="Compare", icon="🧮"),
    st.Page(str(ROOT / "app" / "pages" / "filters.py"), title="Filters", icon="🧩"),
    st.Page(str(ROOT / "app" / "pages" / "activations.py"), title="Activations", icon="🗺️"),
    st.Page(str(ROOT / "app" / "pages" / "patches.py"), title="Top patches", icon="🔎"),
    st.Page(str(ROOT / "app" / "pages" / "feature_visualization.py"), title="Feature visualisation", icon="🎨"),
    st.Page(str(ROOT / "app" / "pages" / "model.py"), title="Model", icon="🧱"),
]

navigation = st.navigation(PAGES)
sidebar.render()
navigation.run()
