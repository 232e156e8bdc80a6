#!/usr/bin/env bash
# Install everything the tests need (Debian's chromium and Fashion-MNIST, the Python packages into
# .venv), check the code style, and run the whole test suite. Usage: bash scripts/run-tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
