"""Benchmark photos: realistic JPEGs (mostly ~500x375, a few phone-sized) and ~10% PNG, cached by count/seed."""

import logging
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from imagebatch.worker.samples import write_sample_photos

logger = logging.getLogger(__name__)

IMAGENET_SIZE = (500, 375)
PHONE_SIZE = (4032, 3024)
PNG_EVERY = 10  # every 10th image is a PNG
PHONE_EVERY = 20  # one in 20 is a phone photo (before the PNG rule)
_DONE = "complete"


def cache_dir(count: int, seed: int) -> Path:
    return Path(tempfile.gettempdir()) / "imagebatch-bench" / f"images-{count}-seed{seed}"


def _base_photos() -> list[Image.Image]:
    """scikit-image's bundled photos, as RGB, from the same set the demo uses."""
    with tempfile.TemporaryDirectory() as tmp:
        photos = []
        for path in write_sample_photos(Path(tmp)):
            with Image.open(path) as im:
                photos.append(im.convert("RGB"))
        return photos


def _variant(base: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A random crop of the base at the target aspect, resized, flipped sometimes, with sensor noise."""
    width, height = size
    if rng.random() < 0.3:
        width, height = height, width  # portrait
    aspect = width / height
    crop_w = min(base.width, int(base.height * aspect))
    crop_w = int(crop_w * rng.uniform(0.6, 1.0))
    crop_h = max(1, int(crop_w / aspect))
    left = int(rng.integers(0, base.width - crop_w + 1))
    top = int(rng.integers(0, base.height - crop_h + 1))
    image = base.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.BICUBIC)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(image, dtype=np.int16)
    noise = rng.normal(0, rng.uniform(2, 8), size=pixels.shape).astype(np.int16)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def kind_of(index: int) -> str:
    """png | phone | jpeg: the mix the benchmark claims, decided by index alone."""
    if index % PNG_EVERY == PNG_EVERY - 1:
        return "png"
    if index % PHONE_EVERY == 7:
        return "phone"
    return "jpeg"


def write_bench_images(directory: Path, count: int, seed: int = 0) -> list[Path]:
    """Write `count` images into `directory` (deterministic for a seed)."""
    directory.mkdir(parents=True, exist_ok=True)
    bases = _base_photos()
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        kind = kind_of(i)
        base = bases[int(rng.integers(0, len(bases)))]
        image = _variant(base, PHONE_SIZE if kind == "phone" else IMAGENET_SIZE, rng)
        path = directory / f"bench_{i:05d}.{'png' if kind == 'png' else 'jpg'}"
        if kind == "png":
            image.save(path, "PNG")
        else:
            image.save(path, "JPEG", quality=int(rng.integers(80, 96)))
        paths.append(path)
    return paths


def bench_images(count: int, seed: int = 0, directory: Path | None = None) -> list[Path]:
    """The cached image set for (count, seed), generated on first use."""
    directory = directory or cache_dir(count, seed)
    if (directory / _DONE).exists():
        return sorted(p for p in directory.iterdir() if p.name.startswith("bench_"))
    logger.info("generating %d benchmark images in %s", count, directory)
    paths = write_bench_images(directory, count, seed)
    (directory / _DONE).write_text(str(count))
    return paths
