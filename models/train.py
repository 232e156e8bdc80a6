"""Train a CNN from the command line: ``python -m models.train`` (the same as ``cnn-lens train``).

    python -m models.train --data fashion-mnist --blocks 2 --filters 32 --dropout 0.25 \\
        --augment flip,rotate --epochs 3 --out my.keras
    python -m models.train --data photos.zip --model transfer --base mobilenet_v2 --random-weights \\
        --image-size 96 --fine-tune-layers 20 --fine-tune-epochs 2 --out pets.keras

It builds one ``TrainConfig`` (the Train page builds the same one) and calls
``models.training.train``; it prints one line per epoch, the test accuracy, the per-class
accuracy and the wall time, and writes the model as a ``.keras`` file (and, with
``--classes``, its class names one per line).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from models.training import AUGMENTATIONS, HEADS, OPTIMIZERS, SCHEDULES, TRANSFER_BASES, TrainConfig, TrainEvent


def parse_augment(text: str) -> dict[str, float]:
    """``flip,rotate=0.1,zoom`` -> {"flip": 0.0, "rotate": 0.1, "zoom": 0.0} (0: the default strength)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name not in AUGMENTATIONS:
            raise argparse.ArgumentTypeError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}")
        try:
            out[name] = float(value) if value else 0.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"the strength of {name} must be a number, not {value!r}") from None
    return out


def build_parser(prog: str = "python -m models.train") -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog=prog, description="Train a CNN (Build or Transfer) and save it as .keras.")
    p.add_argument("--data", default=d.data, help="fashion-mnist, or a folder / .zip with one sub-folder per class")
    p.add_argument("--model", choices=("build", "transfer"), default=d.model)
    g = p.add_argument_group("Build")
    g.add_argument("--blocks", type=int, default=d.blocks, help="conv blocks (default %(default)s)")
    g.add_argument("--filters", type=int, default=d.filters, help="filters in the first block, doubled per block")
    g.add_argument("--convs-per-block", type=int, default=d.convs_per_block)
    g.add_argument("--no-batch-norm", dest="batch_norm", action="store_false", help="leave out BatchNormalization")
    g.add_argument("--dropout", type=float, default=d.dropout)
    g.add_argument("--head", choices=HEADS, default=d.head, help="gap (global average pooling) or flatten")
    g = p.add_argument_group("Transfer")
    g.add_argument("--base", choices=list(TRANSFER_BASES), default=d.base)
    g.add_argument("--random-weights", action="store_true", help="random base weights (a demo; needs no download)")
    g.add_argument("--image-size", type=int, default=None, help="square input size (default: data's own / 96)")
    g.add_argument("--fine-tune-layers", type=int, default=d.fine_tune_layers)
    g.add_argument("--fine-tune-epochs", type=int, default=d.fine_tune_epochs)
    g.add_argument("--fine-tune-factor", type=float, default=d.fine_tune_factor)
    g = p.add_argument_group("Augmentation and optimisation")
    g.add_argument("--augment", type=parse_augment, default={}, help=f"comma list of {', '.join(AUGMENTATIONS)}")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument("--learning-rate", "--lr", type=float, default=d.learning_rate)
    g.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--no-early-stopping", dest="early_stopping", action="store_false")
    g.add_argument("--patience", type=int, default=d.patience)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--max-train", type=int, default=None, help="use at most this many training pictures")
    g.add_argument("--max-test", type=int, default=None, help="test on at most this many pictures")
    p.add_argument("--out", type=Path, default=None, help="where to write the trained model (.keras)")
    p.add_argument("--classes", type=Path, default=None, help="also write the class names here, one per line")
    p.add_argument("--quiet", action="store_true", help="print only the result")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data=args.data,
        model=args.model,
        blocks=args.blocks,
        filters=args.filters,
        convs_per_block=args.convs_per_block,
        batch_norm=args.batch_norm,
        dropout=args.dropout,
        head=args.head,
        base=args.base,
        base_weights=None if args.random_weights else "imagenet",
        fine_tune_layers=args.fine_tune_layers,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_factor=args.fine_tune_factor,
        image_size=args.image_size,
        augment=args.augment,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        schedule=args.schedule,
        epochs=args.epochs,
        batch_size=args.batch_size,
        early_stopping=args.early_stopping,
        patience=args.patience,
        seed=args.seed,
        max_train=args.max_train,
        max_test=args.max_test,
    )


def _printer(quiet: bool):
    def show(event: TrainEvent) -> None:
        if quiet:
            return
        if event.kind == "epoch":
            val = (
                f"  val_loss {event.val_loss:.4f}  val_accuracy {event.val_accuracy:.4f}"
                if event.val_loss is not None
                else ""
            )
            print(
                f"epoch {event.epoch + 1}/{event.epochs} ({event.phase}): loss {event.loss:.4f}  "
                f"accuracy {event.accuracy:.4f}{val}  {event.epoch_s:.1f} s",
                flush=True,
            )
        elif event.kind in ("start", "phase", "evaluate") and event.message:
            print(event.message, flush=True)

    return show


def main(argv: list[str] | None = None, prog: str = "python -m models.train") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.out is not None and args.out.suffix != ".keras":
        print(f"{prog}: --out must end in .keras (got {args.out})", file=sys.stderr)
        return 2
    from models.errors import ModelLoadError
    from models.training import train

    config = config_from_args(args)
    started = time.perf_counter()
    try:
        result = train(config, progress=_printer(args.quiet))
    except ModelLoadError as exc:  # TrainingError too: a message a person can act on
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - started
    print(
        f"test accuracy on {result.test_count:,} test pictures: {result.test_accuracy:.4f} "
        f"({result.epochs_run} epochs{', ' + result.stop_reason if result.stop_reason else ''}; "
        f"{result.parameters:,} parameters; data: {result.data_source})"
    )
    for name, acc in zip(result.class_names, result.per_class_accuracy, strict=True):
        print(f"  {name:<20} {acc:.3f}")
    per_epoch = ", ".join(f"{s:.1f}" for s in result.epoch_seconds)
    print(f"wall time {wall:.1f} s (epochs: {per_epoch} s)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result.model.model.save(args.out)
        print(f"wrote {args.out}")
    if args.classes is not None:
        args.classes.write_text("\n".join(result.class_names) + "\n", encoding="utf-8")
        print(f"wrote {args.classes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
