# CNN Lens: the Streamlit app in a container.
#
#   CPU (default):  docker build -t cnn-lens .
#   GPU:            docker build -t cnn-lens:gpu --build-arg TF_PACKAGE="tensorflow[and-cuda]" .
#   run:            docker run --rm -p 8501:8501 cnn-lens            (GPU: add --gpus all)
#
# No apt packages are needed: the wheels of TensorFlow, opencv-python-headless (no libGL),
# h5py and scikit-learn bundle their native libraries, and the slim base already has
# libstdc++ and zlib. The health check uses Python, so no curl either.
FROM python:3.11-slim

# The TensorFlow build to install. requirements.txt pins tensorflow-cpu on Linux x86_64;
# any other value (e.g. "tensorflow[and-cuda]", the CUDA build for NVIDIA GPUs) replaces it.
ARG TF_PACKAGE=tensorflow-cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/home/lens

RUN useradd --create-home --home-dir /home/lens --uid 10001 --shell /usr/sbin/nologin lens

WORKDIR /app

COPY requirements.txt ./
RUN if [ "$TF_PACKAGE" = "tensorflow-cpu" ]; then \
        pip install -r requirements.txt; \
    else \
        grep -v -E '^[[:space:]]*tensorflow(-cpu)?[[:space:]]*([<>=!~;[]|$)' requirements.txt > /tmp/requirements-without-tf.txt \
        && pip install -r /tmp/requirements-without-tf.txt "$TF_PACKAGE" \
        && rm /tmp/requirements-without-tf.txt; \
    fi

# The project itself (its dependencies are already installed above): the cnn-lens command,
# with the packages, the bundled model and the server settings (app/streamlit_config.toml).
COPY pyproject.toml README.md ./
COPY assets/ assets/
COPY models/ models/
COPY interpret/ interpret/
COPY serving/ serving/
COPY app/ app/
COPY cli/ cli/
RUN pip install --no-deps . && rm -rf build *.egg-info

USER lens

EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"]

CMD ["cnn-lens", "app", "--server.port=8501", "--server.address=0.0.0.0"]
