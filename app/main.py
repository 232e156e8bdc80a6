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
]

navigation = st.navigation(PAGES)
sidebar.render()
navigation.run()
