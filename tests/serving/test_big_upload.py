"""The biggest model the app names, VGG16 (about 530 MB as .keras), goes through under the default caps.

Streamlit's upload cap and the model check's cap are the same number
(tests/security/test_streamlit_config.py); this is the rest of the way: the check, the
worker's memory cap while Keras loads it (a peak near 3 GB), and one call.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from models.safety import Limits
from serving import compute
from serving.pool import WorkerPool
from serving.worker import WorkerLimits


@pytest.mark.slow
def test_a_vgg16_sized_upload_is_checked_loaded_and_answers_under_the_default_caps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CNN_LENS_MAX_MODEL_MB", "CNN_LENS_WORKER_MAX_RSS_MB", "CNN_LENS_WORKER_LOAD_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "vgg16.keras"
    keras.applications.VGG16(weights=None).save(path)  # random weights: the same 138 M parameters
    data = path.read_bytes()
    assert 500_000_000 < len(data) <= Limits().max_file_bytes
    pool = WorkerPool(max_workers=1, folder=tmp_path / "uploads", limits=WorkerLimits.from_env())
    try:
        m = pool.load(data, "vgg16.keras")
        assert m.input_shape == (224, 224, 3) and m.num_classes == 1000
        image = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
        assert len(compute.run(m, compute.top_k, image=image, k=3)) == 3
        (worker,) = pool.live_workers()
        assert worker.peak_rss < pool.limits.max_rss_bytes
    finally:
        pool.close()
