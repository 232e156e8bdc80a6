"""Command line: write an explanation overlay for one picture (also ``cnn-lens explain``).

    python -m interpret --model fashion-mnist-cnn --image assets/samples/fashion/9_ankle-boot_1.png \
        --method gradcam --out boot.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_param(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param expects NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def comma_list(text: str) -> list[str]:
    """``"gradcam, occlusion"`` -> ``["gradcam", "occlusion"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def method_params(pairs: list[str]) -> dict[str, dict[str, object]]:
    """``--param METHOD.NAME=VALUE`` lists: ``["occlusion.patch=4", ...]`` -> ``{"occlusion": {"patch": 4}}`` (values read as JSON where they can be)."""
    out: dict[str, dict[str, object]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        method, dot, name = key.partition(".")
        if not (sep and dot and method and name):
            raise argparse.ArgumentTypeError(f"--param expects METHOD.NAME=VALUE, got {pair!r}")
        out.setdefault(method, {}).update([parse_param(f"{name}={value}")])
    return out


def main(argv: list[str] | None = None, prog: str = "python -m interpret") -> int:
    from interpret import METHODS

    parser = argparse.ArgumentParser(prog=prog, description="Explain a CNN's prediction for one image.")
    parser.add_argument("--model", default="fashion-mnist-cnn", help="bundled/zoo name or path to a .keras file")
    parser.add_argument("--image", required=True, help="picture to explain (PNG, JPEG, ...)")
    parser.add_argument("--method", default="gradcam", choices=list(METHODS))
    parser.add_argument("--out", required=True, help="where to write the overlay PNG")
    parser.add_argument("--target", default=None, help="class index or name (default: top-1)")
    parser.add_argument("--layer", default=None, help="layer path for CAM methods (default: last conv)")
    parser.add_argument("--class-names", default=None, help="text/JSON file of class names for a .keras model")
    parser.add_argument("--weights", default="imagenet", help="zoo weights: imagenet or none")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument(
        "--cmap",
        default=None,
        help="colormap (default: coolwarm for signed maps, drawn opaque where strong, as in the app; jet otherwise)",
    )
    parser.add_argument("--param", action="append", type=parse_param, default=[], help="method parameter NAME=VALUE")
    parser.add_argument("--npy", default=None, help="also save the raw heatmap as .npy")
    args = parser.parse_args(argv)

    from interpret import explain, render
    from interpret.images import read_image
    from models import load
    from models.class_names import parse_class_names

    try:
        names = parse_class_names(Path(args.class_names).read_bytes()) if args.class_names else None
        m = load(args.model, class_names=names, weights=None if args.weights.lower() == "none" else args.weights)
        image = read_image(args.image)
        target = int(args.target) if args.target is not None and args.target.lstrip("-").isdigit() else args.target
        e = explain(m, image, method=args.method, target=target, layer=args.layer, **dict(args.param))
        method = METHODS[args.method]
        cmap = args.cmap or render.default_cmap(method.signed)
        # drawn as the Explain page draws it (signed maps on a diverging map, LIME's outlines), at the picture's size
        picture = render.method_overlay(method, image, e.heatmap, e.extras, alpha=args.alpha, cmap=cmap)
        Path(args.out).write_bytes(render.encode(picture, "PNG"))
        if args.npy:
            import numpy as np

            np.save(args.npy, e.heatmap)
    except (ValueError, OSError) as exc:  # ModelLoadError, ImageError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    layer = f" at {e.layer}" if e.layer else ""
    print(f"{m.name}: {METHODS[args.method].title} for class {e.target} ({e.target_name}){layer} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
