"""Widgets shared by pages: method parameters from the registry, overlay controls."""

from __future__ import annotations

from typing import Any

import streamlit as st

from interpret.overlay import COLORMAPS
from interpret.registry import Method, Param


def param_widget(p: Param, key: str) -> Any:
    if p.kind == "bool":
        return st.checkbox(p.name.replace("_", " "), value=p.default, help=p.help, key=key)
    if p.kind == "choice":
        return st.selectbox(p.name.replace("_", " "), p.choices, index=p.choices.index(p.default), help=p.help, key=key)
    cast = int if p.kind == "int" else float
    return st.number_input(
        p.name.replace("_", " "),
        min_value=cast(p.min) if p.min is not None else None,
        max_value=cast(p.max) if p.max is not None else None,
        value=cast(p.default),
        step=cast(p.step) if p.step is not None else (1 if p.kind == "int" else None),
        help=p.help,
        key=key,
    )


def method_params(method: Method, prefix: str) -> dict[str, Any]:
    """One widget per parameter of ``method``; returns their values."""
    return {p.name: param_widget(p, f"{prefix}:{method.name}:{p.name}") for p in method.params}


def overlay_controls(prefix: str) -> tuple[float, str]:
    col1, col2 = st.columns(2)
    alpha = col1.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key=f"{prefix}:alpha")
    cmap = col2.selectbox("Colormap", COLORMAPS, key=f"{prefix}:cmap")
    return alpha, cmap
