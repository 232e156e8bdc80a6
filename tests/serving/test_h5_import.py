"""Uploaded .h5 files and Teachable Machine zips: checked in the server, converted in a subprocess, served by the pool."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
import h5_fixtures as fx  # noqa: E402

from models.errors import UnsafeModelError  # noqa: E402
from serving import h5_import  # noqa: E402
from serving.h5_import import convert_upload, is_legacy_upload  # noqa: E402
from serving.pool import WorkerPool  # noqa: E402
from serving.tasks import predict  # noqa: E402


def test_which_uploads_are_legacy() -> None:
    assert is_legacy_upload("keras_model.h5") and is_legacy_upload("x.HDF5") and is_legacy_upload("converted_keras.zip")
    assert not is_legacy_upload("model.keras")


def test_a_lambda_h5_is_refused_before_any_converter_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Lambda(lambda x: x * 2.0), keras.layers.Flatten()])
    model.save(tmp_path / "evil.h5")
    started = []
    monkeypatch.setattr(h5_import.subprocess, "Popen", lambda *a, **k: started.append(a))
    with pytest.raises(UnsafeModelError, match="Lambda layer"):
        convert_upload((tmp_path / "evil.h5").read_bytes(), "evil.h5")
    assert not started


@pytest.mark.slow
def test_teachable_machine_zip_is_converted_and_served_by_the_worker_pool(tmp_path: Path) -> None:
    model = fx.teachable_like()
    h5 = fx.save_h5(model, tmp_path / "keras_model.h5", keras2=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(h5, "keras_model.h5")
        z.writestr("labels.txt", "0 Cat\n1 Dog\n2 Bird\n")
    converted = convert_upload(buf.getvalue(), "converted_keras.zip")
    assert converted.class_names == ["Cat", "Dog", "Bird"] and converted.preprocessing == "-1..1"
    assert converted.filename == "teachable_machine.keras" and converted.keras_bytes[:2] == b"PK"
    pool = WorkerPool(max_workers=1, folder=tmp_path / "pool")
    try:
        served = pool.load(converted.keras_bytes, converted.filename, converted.class_names, converted.preprocessing)
        assert served.class_names == ["Cat", "Dog", "Bird"]
        picture = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        probs = served.call(predict, images=picture)
    finally:
        pool.close()
    expected = model.predict(picture[None].astype("float32") / 127.5 - 1.0, verbose=0)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
