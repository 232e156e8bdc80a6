#!/usr/bin/env bash
# Install what the app needs into .venv and start it on the bundled default model (no network needed
# after the install). Usage: bash scripts/run-app.sh [extra streamlit options, e.g. --server.port=8502]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/cnn-lens app "$@"
