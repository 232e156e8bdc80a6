"""The model trained in this session: the Train page hands it over, the sidebar offers it to every page."""

from __future__ import annotations

from typing import Any

import streamlit as st

from models import ModelHandle

TRAINED = "Trained in this session"  # the sidebar's model source
_KEY = "trained:model"  # (handle, digest of its .keras file)


def current() -> tuple[ModelHandle, str] | None:
    """(handle, digest) of the model this session trained and chose to explain, if any."""
    value = st.session_state.get(_KEY)
    return value if isinstance(value, tuple) and len(value) == 2 else None


def use(outcome: Any) -> None:
    """Put a finished job's model in the sidebar as "Trained in this session" and select it (a widget callback)."""
    st.session_state[_KEY] = (outcome.model, outcome.digest)
    st.session_state["model_source"] = TRAINED


def session_id() -> str:
    """The Streamlit session's id: training jobs are kept per session, so coming back to the page finds them."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"
