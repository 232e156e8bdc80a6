"""``load_dataset``: the bundled test set, folders and zips by the ImageFolder rule, hostile entries, bounded memory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.datasets import Dataset, DatasetError, DatasetLimits, load_dataset
from models.fashion_mnist_data import DEBIAN_DIR
from models.images import encode_png, read_image, shrunk_size

ROOT = Path(__file__).resolve().parents[2]


def png(value: int, shape=(12, 10)) -> bytes:
    return encode_png(np.full(shape, value, np.uint8))


def make_zip(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16) | 0
            z.writestr(info, target)
    return buf.getvalue()


@pytest.mark.skipif(not DEBIAN_DIR.exists(), reason="needs Debian's dataset-fashion-mnist")
def test_bundled_test_set_is_the_whole_fashion_mnist_test_split():
    ds = load_dataset("fashion-mnist-test")
    assert len(ds) == 10_000 and ds.kind == "bundled"
    assert ds.class_names[0] == "T-shirt/top" and len(ds.class_names) == 10
    assert ds.labels.dtype == np.int64 and np.bincount(ds.labels).tolist() == [1000] * 10
    assert ds[0].shape == (28, 28) and ds[0].dtype == np.uint8
    assert ds.ids[42] == "fashion-mnist-test/00042"
    indices, pixels = next(ds.batches(64, shape=(32, 32, 3)))  # another model's input: resized, grey -> RGB
    assert indices.tolist() == list(range(64)) and pixels.shape == (64, 32, 32, 3) and pixels.dtype == np.uint8
    assert len(load_dataset("fashion-mnist-test", limit=100)) == 100


def test_folder_follows_the_image_folder_convention(tmp_path):
    for cls, values in {"dog": (1, 2), "cat": (3, 4, 5)}.items():
        (tmp_path / cls).mkdir()
        for v in values:
            (tmp_path / cls / f"{v}.png").write_bytes(png(v))
    (tmp_path / "cat" / "deeper").mkdir()
    (tmp_path / "cat" / "deeper" / "6.png").write_bytes(png(6))
    (tmp_path / "README.txt").write_text("about the pictures")
    (tmp_path / "stray.png").write_bytes(png(7))
    (tmp_path / ".hidden.png").write_bytes(png(8))
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["cat", "dog"]  # sorted folder names, as Keras' image_dataset_from_directory
    # round robin over the classes, so that the first N hold every class
    assert ds.ids == ["cat/3.png", "dog/1.png", "cat/4.png", "dog/2.png", "cat/5.png", "cat/deeper/6.png"]
    assert ds.labels.tolist() == [0, 1, 0, 1, 0, 0]
    assert [int(ds[i][0, 0]) for i in range(len(ds))] == [3, 1, 4, 2, 5, 6]
    assert any(p.startswith("README.txt: skipped, not a picture") for p in ds.problems)
    assert any(p.startswith("stray.png: skipped, it is not inside a class folder") for p in ds.problems)
    assert not any("hidden" in p for p in ds.problems)
    assert load_dataset(tmp_path, limit=2).ids == ["cat/3.png", "dog/1.png"]


def test_folder_without_class_folders_is_unlabeled(tmp_path):
    for v in (1, 2):
        (tmp_path / f"{v}.jpg").write_bytes(png(v))  # a PNG named .jpg: the decoder reads what it is
    ds = load_dataset(tmp_path)
    assert ds.class_names == [] and ds.labels.tolist() == [-1, -1] and not ds.labeled
    assert ds[1][0, 0] == 2


def test_zip_with_a_corrupt_picture_a_non_picture_and_a_traversal_entry(rng):
    """The bad entries are listed by name; every other picture is read."""
    good = {
        f"pets/{c}/{i}.png": encode_png(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
        for c in ("cat", "dog")
        for i in range(3)
    }
    data = make_zip(
        {
            **good,
            "pets/cat/corrupt.png": png(1)[:30],  # a truncated PNG: found when it is read
            "pets/dog/notes.txt": b"not a picture",
            "../../etc/evil.png": png(2),
            "/absolute.png": png(3),
            "__MACOSX/pets/cat/._0.png": b"resource fork",
        },
        symlinks={"pets/dog/link.png": "/etc/passwd"},
    )
    ds = load_dataset(data, name="pets.zip")
    assert ds.class_names == ["cat", "dog"]  # the wrapping "pets/" folder is stripped
    assert len(ds) == 7 and "cat/corrupt.png" in ds.ids
    listed = "\n".join(ds.problems)
    assert "pets/dog/notes.txt: skipped, not a picture" in listed
    assert "../../etc/evil.png: skipped, its path leads out of the archive" in listed
    assert "/absolute.png: skipped, its path is absolute" in listed
    assert "pets/dog/link.png: skipped, it is a symbolic link" in listed
    assert "__MACOSX" not in listed
    seen, labels = [], []
    for indices, pixels in ds.batches(4, shape=(16, 16, 1)):
        assert pixels.shape == (len(indices), 16, 16, 1)
        seen += indices.tolist()
        labels += ds.labels[indices].tolist()
    assert len(seen) == 6 and ds.ids.index("cat/corrupt.png") not in seen
    assert sorted(labels) == [0, 0, 0, 1, 1, 1]
    assert any(
        p.startswith("cat/corrupt.png: skipped, it is damaged") or p.startswith("cat/corrupt.png: skipped, it")
        for p in ds.problems
    )
    with pytest.raises(ValueError, match="corrupt.png"):
        ds[ds.ids.index("cat/corrupt.png")]


def test_zip_caps_refuse_the_archive_or_skip_the_entry(tmp_path):
    pictures = {f"a/{i}.png": png(i) for i in range(5)}
    with pytest.raises(DatasetError, match="5 pictures; the limit is 4"):
        load_dataset(make_zip(pictures), limits=DatasetLimits(max_pictures=4))
    assert len(load_dataset(make_zip(pictures), limit=4, limits=DatasetLimits(max_pictures=4))) == 4
    with pytest.raises(DatasetError, match="holds 5 files; the limit is 3"):
        load_dataset(make_zip(pictures), limits=DatasetLimits(max_entries=3))
    with pytest.raises(DatasetError, match="the limit is 0 MB"):
        load_dataset(make_zip(pictures), limits=DatasetLimits(max_zip_bytes=10))
    bomb = make_zip({**pictures, "a/bomb.png": bytes(5_000_000)})
    ds = load_dataset(bomb)
    assert len(ds) == 5 and any("a/bomb.png: skipped" in p and "zip bomb" in p for p in ds.problems)
    with pytest.raises(DatasetError, match="unpacks to"):
        load_dataset(bomb, limits=DatasetLimits(max_total_bytes=1_000_000))
    with pytest.raises(DatasetError, match="not a zip file"):
        load_dataset(b"plain bytes")
    with pytest.raises(DatasetError, match="no picture"):
        load_dataset(make_zip({"a/b.txt": b"x"}))
    with pytest.raises(DatasetError, match="Unknown dataset"):
        load_dataset(tmp_path / "missing")
    path = tmp_path / "pictures.zip"
    path.write_bytes(make_zip(pictures))
    assert load_dataset(path).name == "pictures.zip" and len(load_dataset(str(path))) == 5


def test_datasets_pickle_and_read_lazily(tmp_path):
    import pickle

    ds = load_dataset(make_zip({f"c{i % 2}/{i}.png": png(i) for i in range(4)}))
    copy = pickle.loads(pickle.dumps(ds))  # what Ray and caches do; the open archive is not pickled
    assert isinstance(copy, Dataset) and copy[3].tolist() == ds[3].tolist()
    assert ds.raw(0)[:8] == b"\x89PNG\r\n\x1a\n"


def test_pictures_are_scaled_down_as_they_are_read():
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    for fmt in ("JPEG", "PNG"):
        buf = io.BytesIO()
        Image.fromarray(big).save(buf, fmt)
        small = read_image(buf.getvalue(), needed=(28, 28))
        assert small.shape == (28, 38, 3)  # the smallest size covering 28x28, aspect kept
        assert read_image(buf.getvalue(), needed=(4000, 4000)).shape == big.shape  # never scaled up
    assert shrunk_size(6400, 6250, (224, 224)) == (230, 224)
    assert shrunk_size(10, 10, (28, 28)) == (10, 10)


MEMORY_SCRIPT = r"""
import json, sys
import numpy as np

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

from models import load
from models.datasets import load_dataset
m = load("fashion-mnist-cnn")
m.predict(np.zeros((8, 28, 28, 1), np.uint8))
data = open(sys.argv[1], "rb").read()  # the upload, already in the server's memory
import gc; gc.collect()
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current size
    f.write("5")
ds = load_dataset(data, name="big.zip")
count = 0
for indices, pixels in ds.batches(8, shape=m.input_shape):
    m.predict(pixels)
    count += len(indices)
print(json.dumps({"zip_mb": len(data) / 1e6, "before": before, "peak": status("VmHWM"), "count": count,
                  "problems": ds.problems, "shapes": sorted({tuple(ds.read(0, needed=(28, 28)).shape)})}))
"""


def forty_megapixel_zip(path: Path, count: int = 30) -> None:
    """30 pictures of 40 MP each (6400 x 6250), PNG and JPEG, smooth so that the zip stays small."""
    x = (np.arange(6400) // 25).astype(np.uint8)
    y = (np.arange(6250) // 25).astype(np.uint8)
    picture = np.empty((6250, 6400, 3), np.uint8)
    picture[..., 0] = x[None, :]
    picture[..., 1] = y[:, None]
    picture[..., 2] = x[None, :] // 2 + y[:, None] // 2
    files = {}
    for fmt, ext, options in (("PNG", "png", {"compress_level": 6}), ("JPEG", "jpg", {"quality": 70})):
        buf = io.BytesIO()
        Image.fromarray(picture).save(buf, fmt, **options)
        files[ext] = buf.getvalue()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i in range(count):
            ext = ("png", "jpg")[i % 2]
            z.writestr(f"big/class{i % 3}/{i:02d}.{ext}", files[ext])


@pytest.mark.slow
def test_memory_rise_for_30_pictures_of_40_megapixels_stays_under_500_mb(tmp_path):
    """The hostile zip of the issue (30 x 40 MP) through the page's path: read one at a time, scaled as decoded."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs /proc/self/clear_refs (Linux) to measure the peak of one phase")
    zip_path = tmp_path / "big.zip"
    forty_megapixel_zip(zip_path)
    script = tmp_path / "memory.py"
    script.write_text(MEMORY_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, str(script), str(zip_path)], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["count"] == 30 and report["problems"] == [], report
    assert report["peak"] - report["before"] < 500, report


def test_pictures_in_memory_of_different_sizes():
    from models.datasets import from_pictures

    ds = from_pictures([np.zeros((30, 40), np.uint8), np.full((50, 20, 3), 0.5)], ids=["a", "b"])
    assert len(ds) == 2 and not ds.labeled and ds.kind == "pictures"
    assert ds[1].dtype == np.uint8 and ds[1].max() == 128  # floats in 0..1 become 0..255
    indices, pixels = next(ds.batches(8, (28, 28, 1)))
    assert indices.tolist() == [0, 1] and pixels.shape == (2, 28, 28, 1)
    assert ds.head(1).ids == ["a"]
    with pytest.raises(ValueError, match="2 pictures but 1 names"):
        from_pictures([np.zeros((4, 4), np.uint8)] * 2, ids=["a"])
    with pytest.raises(ValueError, match="No pictures"):
        from_pictures([])
