"""models.training: the course's CNN and transfer learning, trained on tiny seeded data in the test."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import models
from interpret import explain
from models.training import (
    TrainConfig,
    TrainData,
    TrainEvent,
    TrainingError,
    augmentation_layers,
    augmentation_preview,
    build_model,
    calibrate_batch_norm,
    describe_architecture,
    load_fashion_mnist_split,
    train,
    unfreeze_top,
)


def shapes_data(n: int = 24, size: int = 12, channels: int = 1, seed: int = 0) -> TrainData:
    """Three classes a small CNN learns in one epoch: a bright top half, bottom half, or left half."""
    rng = np.random.default_rng(seed)

    def make(count: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(count) % 3
        x = rng.integers(0, 60, (count, size, size, channels)).astype(np.uint8)
        half = size // 2
        x[y == 0, :half] += 180
        x[y == 1, half:] += 180
        x[y == 2, :, :half] += 180
        return x, y.astype(np.int64)

    (xt, yt), (xv, yv), (xs, ys) = make(n), make(9), make(9)
    return TrainData(xt, yt, xv, yv, xs, ys, ["top", "bottom", "left"], "shapes")


def test_config_refuses_impossible_choices_with_one_sentence() -> None:
    with pytest.raises(TrainingError, match="blocks must be from 1 to 6.*unknown augmentation spin"):
        TrainConfig(blocks=0, augment={"spin": 1}).check()
    with pytest.raises(TrainingError, match="at least 32x32"):
        TrainConfig(model="transfer", image_size=16).check()
    config = TrainConfig(augment={"flip": 0, "rotate": 0.1}, max_train=100)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(TrainingError, match="Unknown training option"):
        TrainConfig.from_dict({"nonsense": 1})


@pytest.mark.parametrize("head, pooling", [("gap", "GlobalAveragePooling2D"), ("flatten", "Flatten")])
def test_build_has_the_chosen_blocks_and_head_and_its_summary_counts_the_parameters(head, pooling) -> None:
    config = TrainConfig(blocks=3, filters=8, convs_per_block=2, batch_norm=True, dropout=0.3, head=head)
    model, base = build_model(config, (28, 28, 1), 10)
    assert base is None
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 6 and kinds.count("BatchNormalization") == 6 and kinds.count("Dropout") == 3
    assert pooling in kinds and kinds[-1] == "Dense"
    assert [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)] == [8, 8, 16, 16, 32, 32]
    arch = describe_architecture(config, (28, 28, 1), 10)
    assert arch.total_params == model.count_params()
    assert arch.trainable_params < arch.total_params  # BatchNorm's moving statistics are not trained
    assert [r.name for r in arch.layers] == [layer.name for layer in model.layers[1:]]
    no_bn, _ = build_model(TrainConfig(batch_norm=False, dropout=0.0), (28, 28, 1), 10)
    assert not any(isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Dropout)) for layer in no_bn.layers)


def test_augmentation_preview_equals_the_layers_output_for_the_same_seed() -> None:
    picture = np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    augment = {"flip": 0, "rotate": 0.1, "zoom": 0.2, "translate": 0.1, "contrast": 0.3, "brightness": 0.2}
    preview = augmentation_preview(picture, augment, n=6, seed=3)
    assert preview.shape == (6, 20, 20, 3) and preview.dtype == np.uint8
    layers = augmentation_layers(augment, seed=3)
    assert [type(layer).__name__ for layer in layers.layers] == [
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
        "RandomContrast",
        "RandomBrightness",
    ]
    batch = np.repeat(picture[None].astype(np.float32) / 255.0, 6, axis=0)
    expected = np.clip(np.rint(np.clip(np.asarray(layers(batch, training=True)), 0, 1) * 255), 0, 255)
    np.testing.assert_array_equal(preview, expected.astype(np.uint8))
    np.testing.assert_array_equal(augmentation_preview(picture, augment, n=6, seed=3), preview)  # repeatable
    assert len({p.tobytes() for p in preview}) == 6  # each copy augmented differently
    assert not np.array_equal(augmentation_preview(picture, augment, n=6, seed=4), preview)
    np.testing.assert_array_equal(augmentation_preview(picture, {}, n=2)[1], picture)  # no augmentation


def test_fashion_mnist_split_is_seeded_and_keeps_the_full_test_set() -> None:
    a = load_fashion_mnist_split(TrainConfig(seed=0))
    assert len(a.y_test) == 10_000 and len(a.y_train) == 54_000 and len(a.y_val) == 6_000
    assert a.x_train.shape[1:] == (28, 28, 1)
    small = load_fashion_mnist_split(TrainConfig(seed=0, max_train=500, max_test=200))
    again = load_fashion_mnist_split(TrainConfig(seed=0, max_train=500, max_test=200))
    other = load_fashion_mnist_split(TrainConfig(seed=1, max_train=500, max_test=200))
    np.testing.assert_array_equal(small.x_train, again.x_train)
    assert not np.array_equal(small.x_train, other.x_train)
    assert len(small.y_train) <= 500 and set(np.unique(small.y_train)) == set(range(10))
    assert len(small.y_test) <= 200


def test_train_reports_batches_and_epochs_and_returns_a_handle_like_any_other() -> None:
    events: list[TrainEvent] = []
    config = TrainConfig(
        blocks=2, filters=8, head="gap", epochs=2, batch_size=8, learning_rate=3e-3, augment={"flip": 0}
    )
    r = train(config, progress=events.append, data=shapes_data())
    assert r.model.source == "trained" and r.model.class_names == ["top", "bottom", "left"]
    assert set(r.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"} and len(r.history["loss"]) == 2
    assert r.epochs_run == 2 and len(r.epoch_seconds) == 2 and not r.stopped
    batches = [e for e in events if e.kind == "batch" and e.batch > 0]
    assert len(batches) == 2 * 3 and batches[0].loss is not None and batches[0].batches == 3
    epochs = [e for e in events if e.kind == "epoch"]
    assert [e.epoch for e in epochs] == [0, 1] and epochs[-1].val_loss is not None and epochs[-1].eta_s == 0.0
    assert r.confusion.shape == (3, 3) and r.confusion.sum() == r.test_count == 9
    assert r.test_accuracy == pytest.approx(np.trace(r.confusion) / 9)
    assert len(r.per_class_accuracy) == 3
    assert len(r.misclassified) == 9 - np.trace(r.confusion)
    assert not any(isinstance(layer, keras.layers.RandomFlip) for layer in r.model.model.layers)  # training only
    picture = shapes_data().x_test[0]
    cam = explain(r.model, picture, "cam")  # CAM works with the GAP head
    assert cam.heatmap.shape == (12, 12) and np.isfinite(cam.heatmap).all()
    assert np.isfinite(explain(r.model, picture, "gradcam").heatmap).all()


def test_cancel_stops_after_the_current_batch_and_keeps_the_model() -> None:
    cancel = threading.Event()

    def progress(event: TrainEvent) -> None:
        if event.kind == "batch" and event.batch == 2:
            cancel.set()

    r = train(TrainConfig(filters=4, epochs=5, batch_size=4), progress=progress, cancel=cancel, data=shapes_data())
    assert r.stopped and r.stop_reason == "stopped" and r.epochs_run == 1
    assert r.test_count == 9  # still evaluated


def test_a_time_limit_stops_training() -> None:
    r = train(TrainConfig(filters=4, epochs=50, batch_size=4), time_limit_s=1e-6, data=shapes_data())
    assert r.stop_reason == "time limit" and r.epochs_run == 1


def test_offline_imagenet_weights_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(**_):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x/mobilenet_v2_no_top.h5: no network")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(TrainingError, match="ImageNet weights of MobileNetV2.*random weights"):
        build_model(TrainConfig(model="transfer", base_weights="imagenet"), (96, 96, 3), 3)


@pytest.mark.slow
def test_transfer_model_is_nested_fine_tunes_its_top_and_explains_on_the_base(tmp_path: Path) -> None:
    events: list[TrainEvent] = []
    config = TrainConfig(
        model="transfer",
        base="mobilenet_v2",
        base_weights=None,
        image_size=32,
        epochs=1,
        fine_tune_layers=4,
        fine_tune_epochs=1,
        batch_size=8,
    )
    r = train(config, progress=events.append, data=shapes_data(channels=1))
    assert r.model.input_shape == (32, 32, 3)  # grayscale pictures fed to an RGB base
    assert r.epochs_run == 2 and any(e.kind == "phase" for e in events)
    assert {e.phase for e in events if e.kind == "epoch"} == {"train", "fine-tune"}
    base = next(layer for layer in r.model.model.layers if isinstance(layer, keras.Model))
    assert r.model.last_conv_layer.startswith(base.name + "/")
    picture = shapes_data().x_test[0]
    e = explain(r.model, picture, "gradcam")
    assert e.heatmap.shape == (12, 12) and np.isfinite(e.heatmap).all()
    e = explain(r.model, picture, "gradcam", layer=f"{base.name}/Conv_1")
    assert np.isfinite(e.heatmap).all()
    # saved and opened again like an upload, it predicts the same
    r.model.model.save(tmp_path / "transfer.keras")
    again = models.load(str(tmp_path / "transfer.keras"), class_names=r.class_names)
    np.testing.assert_allclose(again.predict(picture), r.model.predict(picture), atol=1e-5)


def test_a_random_base_gets_its_batch_norm_statistics_from_the_data(tiny) -> None:
    base = tiny.conv_base()
    base.trainable = False
    bn = base.get_layer("bn1")
    momentum = bn.momentum
    x = np.random.default_rng(0).random((16, 12, 12, 3)).astype("float32")
    assert calibrate_batch_norm(base, x) == 1
    conv = np.asarray(base.get_layer("conv1")(x))
    np.testing.assert_allclose(np.asarray(bn.moving_mean), conv.mean(axis=(0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), conv.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-6)
    assert bn.momentum == momentum and not base.trainable and not base.trainable_weights


def test_unfreeze_top_trains_only_the_top_layers_and_never_batch_norm(tiny) -> None:
    base = tiny.conv_base()
    base.trainable = False
    assert unfreeze_top(base, 1) == 1
    assert [layer.name for layer in base.layers if layer.trainable and layer.weights] == ["conv2"]
    assert unfreeze_top(base, 3) == 2  # conv1 and conv2; bn1 stays frozen
    assert not base.get_layer("bn1").trainable


def test_trains_on_a_zip_of_class_folders(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "shapes.zip"
    with zipfile.ZipFile(path, "w") as z:
        for c, name in enumerate(["dark", "light"]):
            for i in range(8):
                img = rng.integers(0, 80, (20, 24, 3), dtype=np.uint8) + (150 if c else 0)
                img = img.astype(np.uint8)
                Image.fromarray(img).save(tmp_path / "p.png")
                z.write(tmp_path / "p.png", f"data/{name}/{i}.png")
    r = train(TrainConfig(data=str(path), image_size=16, filters=4, epochs=1, batch_size=4, val_fraction=0.2))
    assert r.class_names == ["dark", "light"] and r.model.input_shape == (16, 16, 3)
    assert r.test_count == 4  # 20% of each class of 8
    assert "shapes.zip" in r.data_source


def test_folder_without_class_folders_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(TrainingError, match="at least two class folders"):
        train(TrainConfig(data=str(tmp_path), epochs=1))


def test_cnn_lens_train_command_writes_a_model_that_loads(tmp_path: Path, capsys) -> None:
    from cli import main

    out = tmp_path / "my.keras"
    args = ["train", "--blocks", "1", "--filters", "4", "--dropout", "0.25", "--augment", "flip,rotate"]
    args += [
        "--epochs",
        "1",
        "--max-train",
        "300",
        "--max-test",
        "100",
        "--out",
        str(out),
        "--classes",
        str(tmp_path / "c.txt"),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/1" in printed and "test accuracy on 100 test pictures" in printed and "wall time" in printed
    m = models.load(str(out), class_names=(tmp_path / "c.txt").read_text().split("\n")[:10])
    assert m.input_shape == (28, 28, 1) and m.class_names[-1] == "Ankle boot"


def test_command_refuses_a_bad_augmentation_name() -> None:
    from models.train import main

    with pytest.raises(SystemExit):
        main(["--augment", "spin"])


@pytest.mark.slow
def test_default_build_settings_reach_087_on_the_full_test_set_in_three_epochs() -> None:
    """The issue's bar (the wall time is measured through ``cnn-lens train``, see the README, not here)."""
    r = train(TrainConfig(data="fashion-mnist", epochs=3, seed=0))
    assert r.test_count == 10_000 and r.epochs_run == 3
    assert r.test_accuracy >= 0.87, r.test_accuracy
