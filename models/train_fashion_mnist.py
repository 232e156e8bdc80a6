"""Train the bundled Fashion-MNIST CNN and write its weights, samples and model card.

    python -m models.train_fashion_mnist [--epochs 12] [--seed 0]

Writes ``assets/models/fashion_mnist_cnn.keras``, ``assets/models/fashion_mnist_cnn.md``
and two correctly labelled test images per class in ``assets/samples/fashion/``.
"""

from __future__ import annotations

import argparse
import datetime

import numpy as np

from models.bundled import CLASS_FILE, WEIGHTS, build_fashion_mnist_cnn
from models.class_names import ASSETS, read_asset_names
from models.fashion_mnist_data import DEBIAN_DIR, load_fashion_mnist

SAMPLES = ASSETS / "samples" / "fashion"


def slug(name: str) -> str:
    return name.lower().replace("/", "-").replace(" ", "-")


def write_samples(x_test: np.ndarray, y_test: np.ndarray, predicted: np.ndarray, names: list[str]) -> None:
    from PIL import Image

    SAMPLES.mkdir(parents=True, exist_ok=True)
    for old in SAMPLES.glob("*.png"):
        old.unlink()
    for k, name in enumerate(names):
        idx = np.flatnonzero((y_test == k) & (predicted == k))[:2]
        for j, i in enumerate(idx):
            Image.fromarray(x_test[i]).save(SAMPLES / f"{k}_{slug(name)}_{j + 1}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    source = (
        f"Debian package dataset-fashion-mnist ({DEBIAN_DIR})"
        if DEBIAN_DIR.exists()
        else "keras.datasets.fashion_mnist"
    )
    names = read_asset_names(CLASS_FILE)

    def prep(x: np.ndarray) -> np.ndarray:
        return (x.astype("float32") / 255.0)[..., None]

    model = build_fashion_mnist_cnn(len(names))
    steps = args.epochs * int(np.ceil(len(x_train) * 0.9 / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    augment = keras.Sequential([keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant")])
    xt = prep(x_train)
    n_val = len(xt) // 10
    import tensorflow as tf

    train = (
        tf.data.Dataset.from_tensor_slices((xt[n_val:], y_train[n_val:]))
        .shuffle(10_000, seed=args.seed)
        .batch(args.batch_size)
        .map(lambda x, y: (augment(x, training=True), y))
        .prefetch(2)
    )
    model.fit(train, validation_data=(xt[:n_val], y_train[:n_val]), epochs=args.epochs, verbose=2)
    probs = model.predict(prep(x_test), batch_size=512, verbose=0)
    predicted = probs.argmax(axis=1)
    accuracy = float((predicted == y_test).mean())
    print(f"test accuracy on all {len(y_test)} test images: {accuracy:.4f}")

    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    model.save(WEIGHTS)
    write_samples(x_test, y_test, predicted, names)
    per_class = {names[k]: float((predicted[y_test == k] == k).mean()) for k in range(len(names))}
    summary: list[str] = []
    model.summary(print_fn=lambda line, **_: summary.append(line))
    card = [
        "# Model card: fashion-mnist-cnn",
        "",
        "The bundled default model of CNN Lens. It works offline and is small enough to explain in real time.",
        "",
        "## Architecture",
        "",
        "Three blocks of (Conv 3x3 - BatchNorm - ReLU) x 2 with 16, 32 and 64 filters; max pooling and dropout",
        "after the first two; global average pooling, dropout, and one Dense softmax layer (so CAM applies).",
        "Input: 28x28x1 grayscale, pixels / 255.",
        "",
        "```",
        *summary,
        "```",
        "",
        "## Data",
        "",
        f"Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), read from the {source}.",
        "60,000 training images (10% held out for validation), random translations of up to 8% as augmentation.",
        "",
        "## Accuracy",
        "",
        f"**{accuracy:.4f}** on the full test set of {len(y_test):,} images "
        f"({args.epochs} epochs, batch {args.batch_size}, Adam with cosine decay from 2e-3, seed {args.seed}).",
        "",
        "| class | accuracy |",
        "|---|---|",
        *[f"| {name} | {acc:.3f} |" for name, acc in per_class.items()],
        "",
        "## Retrain",
        "",
        "```",
        f"python -m models.train_fashion_mnist --epochs {args.epochs} --seed {args.seed}",
        "```",
        "",
        f"Trained {datetime.date.today().isoformat()} with Keras {keras.__version__}. "
        "The samples in `assets/samples/fashion/` are two correctly classified test images per class.",
    ]
    (WEIGHTS.parent / "fashion_mnist_cnn.md").write_text("\n".join(card) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
