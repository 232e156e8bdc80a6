"""``cnn-lens batch``: results.parquet and summary.json, resuming by shards, bad pictures, model checks, Ray = local."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cli import main as cli_main
from interpret import explain
from interpret.batch import BatchSettings
from models.datasets import load_dataset
from models.fashion_mnist_data import DEBIAN_DIR
from models.images import encode_png
from serving.batch import BatchJob, read_heatmaps, run_batch

needs_fashion = pytest.mark.skipif(not DEBIAN_DIR.exists(), reason="needs Debian's dataset-fashion-mnist")


def job(out: Path, **kw) -> BatchJob:
    settings = kw.pop("settings", BatchSettings(methods=["gradcam", "saliency"]))
    return BatchJob(model="fashion-mnist-cnn", data="fashion-mnist-test", out=out, settings=settings, **kw)


@needs_fashion
def test_local_engine_writes_rows_and_summary(tmp_path):
    settings = BatchSettings(methods=["gradcam", "saliency"], metrics=["deletion", "insertion"], steps=5)
    summary = run_batch(job(tmp_path, settings=settings, limit=40, shard_size=16, batch_size=8), progress=False)
    t = pq.read_table(tmp_path / "results.parquet")
    assert t.num_rows == 80 and t.column("method").to_pylist()[:2] == ["gradcam", "saliency"]
    rows = t.to_pydict()
    ds = load_dataset("fashion-mnist-test", limit=40)
    from models import load

    probs = load("fashion-mnist-cnn").predict(np.stack([ds[i] for i in range(40)]))
    np.testing.assert_array_equal(rows["predicted"][::2], probs.argmax(-1))
    np.testing.assert_array_equal(rows["label"][::2], ds.labels)
    np.testing.assert_allclose(rows["probability"][::2], probs.max(-1), rtol=1e-5)
    assert rows["id"][0] == "fashion-mnist-test/00000" and rows["label_name"][0] == "Ankle boot"
    assert rows["heatmap_height"][0] == rows["heatmap_width"][0] == 28
    assert rows["heatmap_file"][0] == "heatmaps/shard-000000000-000000016.npy" and rows["heatmap_row"][:3] == [0, 1, 2]
    maps = read_heatmaps(tmp_path, t)
    assert maps.shape == (80, 28, 28) and maps.dtype == np.float32
    m = load("fashion-mnist-cnn")
    for k in (0, 1, 79):  # rows of the first and the last shard, each equal to explain for its picture and method
        e = explain(m, ds[rows["index"][k]], rows["method"][k], target=rows["target"][k])
        np.testing.assert_allclose(maps[k], e.heatmap, atol=1e-5 * max(1.0, float(np.abs(e.heatmap).max())))
    assert all(0 <= v <= 1 for v in rows["deletion_auc"] + rows["insertion_auc"])
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["accuracy"] == pytest.approx(float(np.mean(probs.argmax(-1) == ds.labels)))
    assert set(summary["per_method"]["gradcam"]) == {"rows", "deletion_auc", "insertion_auc"}
    assert summary["per_method"]["gradcam"]["deletion_auc"]["better"] == "lower is better"
    assert summary["run"]["shards_computed"] == 3 and summary["run"]["pictures_per_second"] > 0


@needs_fashion
def test_rerun_skips_finished_shards_and_refuses_other_settings(tmp_path):
    run_batch(job(tmp_path, limit=32, shard_size=16, batch_size=16), progress=False)
    first = tmp_path / "shards" / "shard-000000000-000000016.parquet"
    stamp = first.stat().st_mtime_ns
    again = run_batch(job(tmp_path, limit=48, shard_size=16, batch_size=16), progress=False)  # a larger limit
    assert again["run"]["shards_resumed"] == 2 and again["run"]["shards_computed"] == 1
    assert first.stat().st_mtime_ns == stamp and again["explained"] == 48
    assert pq.read_table(tmp_path / "results.parquet").num_rows == 96
    (tmp_path / "heatmaps" / "shard-000000016-000000032.npy").unlink()  # a shard whose heatmaps are lost
    third = run_batch(job(tmp_path, limit=48, shard_size=16, batch_size=16), progress=False)
    assert third["run"]["shards_resumed"] == 2 and third["run"]["shards_computed"] == 1
    assert np.isfinite(read_heatmaps(tmp_path, pq.read_table(tmp_path / "results.parquet"))).all()
    with pytest.raises(ValueError, match="another model, dataset or settings"):
        run_batch(job(tmp_path, settings=BatchSettings(methods=["gradcam"]), limit=48, shard_size=16), progress=False)
    fresh = run_batch(
        job(tmp_path, settings=BatchSettings(methods=["gradcam"]), limit=16, shard_size=16, restart=True),
        progress=False,
    )
    assert fresh["run"]["shards_resumed"] == 0


def test_zip_with_bad_entries_and_an_uploaded_model(tmp_path, tiny, rng):
    """A corrupt picture, a non-picture and a traversal entry: listed; every other picture has its rows."""
    model, _, _ = tiny.nested_sequential(input_shape=(12, 12, 3), classes=3)
    model_path = tmp_path / "nested.keras"
    model.save(model_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for c in ("cat", "dog", "fox"):
            for i in range(2):
                z.writestr(f"{c}/{i}.png", encode_png(rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)))
        z.writestr("dog/broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
        z.writestr("fox/readme.md", b"# notes")
        z.writestr("../escape.png", encode_png(np.zeros((4, 4), np.uint8)))
    data = tmp_path / "pets.zip"
    data.write_bytes(buf.getvalue())
    names = tmp_path / "classes.txt"
    names.write_text("cat\ndog\nfox\n")
    out = tmp_path / "out"
    code = cli_main(
        ["batch", "--model", str(model_path), "--class-names", str(names), "--data", str(data),
         "--methods", "gradcam", "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pictures"] == 7 and summary["explained"] == 6 and summary["labels_matched"] == "name"
    assert [s["id"] for s in summary["skipped"]] == ["dog/broken.jpg"]
    listed = " ".join(summary["listing_problems"])
    assert "fox/readme.md: skipped, not a picture" in listed and "../escape.png: skipped" in listed
    t = pq.read_table(out / "results.parquet").to_pydict()
    failed = [i for i, e in enumerate(t["error"]) if e]
    assert len(t["index"]) == 7 and len(failed) == 1 and t["method"][failed[0]] is None
    assert sorted(t["label_name"][i] for i in range(7) if i not in failed) == ["cat", "cat", "dog", "dog", "fox", "fox"]


def test_model_files_are_checked_like_uploads_before_loading(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))
    import hostile_models

    marker = tmp_path / "ran"
    path = hostile_models.top_level_lambda(tmp_path, marker)
    code = cli_main(["batch", "--model", str(path), "--data", "fashion-mnist-test", "--out", str(tmp_path / "o")])
    assert code == 1 and not marker.exists()


@pytest.mark.slow
@needs_fashion
def test_ray_engine_gives_the_same_rows_as_the_local_engine(tmp_path):
    """64 pictures on a real local Ray (two actors): identical predictions, heatmaps within 1e-5."""
    pytest.importorskip("ray")
    settings = BatchSettings(methods=["gradcam", "occlusion"], params={"occlusion": {"patch": 7, "stride": 7}})
    local = run_batch(
        job(tmp_path / "local", settings=settings, limit=64, shard_size=32, batch_size=16), progress=False
    )
    ray = run_batch(
        job(tmp_path / "ray", settings=settings, limit=64, shard_size=32, batch_size=16),
        engine="ray",
        actors=2,
        progress=False,
    )
    assert ray["run"]["engine"] == "ray" and ray["run"]["actors"] == 2
    assert ray["run"]["actor_processes"] == 2  # both actors got pictures
    a = pq.read_table(tmp_path / "local" / "results.parquet").to_pydict()
    b = pq.read_table(tmp_path / "ray" / "results.parquet").to_pydict()
    assert len(a["index"]) == len(b["index"]) == 128
    for key in ("index", "id", "label", "predicted", "method", "target", "correct"):
        assert a[key] == b[key], key
    np.testing.assert_allclose(a["probability"], b["probability"], atol=1e-6)
    np.testing.assert_allclose(read_heatmaps(tmp_path / "local", a), read_heatmaps(tmp_path / "ray", b), atol=1e-5)
    assert local["accuracy"] == ray["accuracy"]
