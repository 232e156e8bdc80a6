#!/usr/bin/env bash
# Install CNN Lens into .venv (editable), with TensorFlow's CUDA build when an NVIDIA GPU is
# visible (`nvidia-smi -L` succeeds) and the CPU build otherwise.
#   bash scripts/install.sh            what the app needs
#   bash scripts/install.sh test       also what the tests need (Debian's chromium and Fashion-MNIST)
#   bash scripts/install.sh --which-tensorflow   only print the TensorFlow package it would choose
set -euo pipefail
cd "$(dirname "$0")/.."

which_tensorflow() {
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "tensorflow[and-cuda]>=2.18"
  else
    echo "cpu"  # requirements.txt's own choice: tensorflow-cpu on Linux x86_64, tensorflow elsewhere
  fi
}

if [ "${1:-}" = "--which-tensorflow" ]; then which_tensorflow; exit 0; fi

if [ "${1:-}" = "test" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
  if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install -q)
"${PIP[@]}" --upgrade pip
tf="$(which_tensorflow)"
if [ "$tf" = "cpu" ]; then
  "${PIP[@]}" -e .
else
  echo "NVIDIA GPU found: installing $tf"
  grep -v -E '^[[:space:]]*tensorflow(-cpu)?[[:space:]]*([<>=!~;[]|$)' requirements.txt > .venv/requirements-without-tf.txt
  "${PIP[@]}" -r .venv/requirements-without-tf.txt "$tf"
  "${PIP[@]}" --no-deps -e .
fi
if [ "${1:-}" = "test" ]; then
  "${PIP[@]}" -r requirements-test.txt
fi
