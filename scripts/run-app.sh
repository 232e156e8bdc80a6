#!/usr/bin/env bash
# Install what the app needs into .venv and start it on the bundled default model (no network needed
# after the install). Usage: bash scripts/run-app.sh [extra streamlit args]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
exec .venv/bin/python -m streamlit run app/main.py "$@"
