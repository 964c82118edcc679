"""The UCI handwritten digits shipped with scikit-learn, written as an ImageFolder of PNGs: real labels, offline."""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

HOLDOUT_EVERY = 5  # every 5th image (by its index in load_digits) is held out: a fixed split, 360 of 1,797


@dataclass(frozen=True)
class DigitsFolders:
    train: Path  # train/<digit>/<index>.png
    test: Path  # test/<digit>/<index>.png, never trained on


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise RuntimeError("the digits data set needs scikit-learn: pip install 'imagebatch[samples]'") from exc
    digits = load_digits()
    return digits.images, digits.target


def digit_image(pixels: np.ndarray, size: int) -> Image.Image:
    """An 8x8 digit (0-16, ink high) as dark ink on white paper, upscaled to size x size, RGB."""
    grey = (255 - pixels * (255 / 16)).round().clip(0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").resize((size, size), Image.Resampling.BILINEAR).convert("RGB")


def write_digits(root: Path | str, size: int = 32, per_class: int | None = None) -> DigitsFolders:
    """Write train/ and test/ ImageFolders under root; per_class caps the images per class in each (for quick tests)."""
    images, targets = _load_digits()
    root = Path(root)
    written: dict[tuple[str, int], int] = {}
    for index, (pixels, target) in enumerate(zip(images, targets, strict=True)):
        part = "test" if index % HOLDOUT_EVERY == 0 else "train"
        key = (part, int(target))
        if per_class is not None and written.get(key, 0) >= per_class:
            continue
        folder = root / part / str(int(target))
        folder.mkdir(parents=True, exist_ok=True)
        digit_image(pixels, size).save(folder / f"{index:04d}.png")
        written[key] = written.get(key, 0) + 1
    logger.info("wrote %d digit images (%dx%d) under %s", sum(written.values()), size, size, root)
    return DigitsFolders(root / "train", root / "test")
