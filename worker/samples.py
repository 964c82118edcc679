"""Sample photos made from images inside the scikit-image wheel (no download): demo, tests, int8 calibration."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Keeps the demo quick on small machines: retina and the Hubble field are over 800 px.
_MAX_SIDE = 800


@dataclass(frozen=True)
class _Sample:
    name: str
    loader: str  # function name in skimage.data
    fmt: str  # "JPEG" or "PNG"


# Only images whose files are inside the scikit-image wheel (checked offline with 0.26);
# eagle, kidney, lily, ... need pooch and a download, so they are left out.
_SAMPLES = (
    _Sample("astronaut", "astronaut", "JPEG"),
    _Sample("chelsea-cat", "chelsea", "JPEG"),
    _Sample("coffee", "coffee", "JPEG"),
    _Sample("rocket", "rocket", "JPEG"),
    _Sample("cameraman-gray", "camera", "JPEG"),
    _Sample("motorcycle", "stereo_motorcycle", "JPEG"),
    _Sample("hubble-deep-field", "hubble_deep_field", "JPEG"),
    _Sample("coins-gray", "coins", "PNG"),
    _Sample("moon-gray", "moon", "JPEG"),
    _Sample("immunohistochemistry", "immunohistochemistry", "JPEG"),
    _Sample("retina", "retina", "JPEG"),
    _Sample("clock-gray", "clock", "JPEG"),
    _Sample("page-gray", "page", "PNG"),
    _Sample("text-gray", "text", "PNG"),
    _Sample("horse-silhouette", "horse", "PNG"),
    _Sample("brick-gray", "brick", "JPEG"),
    _Sample("grass-gray", "grass", "JPEG"),
    _Sample("gravel-gray", "gravel", "JPEG"),
    _Sample("colorwheel", "colorwheel", "PNG"),
    _Sample("logo-rgba", "logo", "PNG"),
)


def _center_crop(image: np.ndarray) -> np.ndarray:
    dy, dx = image.shape[0] // 8, image.shape[1] // 8
    return image[dy : image.shape[0] - dy, dx : image.shape[1] - dx]


# Variants used when more images are asked for than the set holds; each changes the pixels.
_VARIANTS: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("flip", lambda a: a[:, ::-1]),
    ("crop", lambda a: _center_crop(a)),
    ("half", lambda a: a[::2, ::2]),
    ("upside-down", lambda a: a[::-1]),
    ("rot90", lambda a: np.rot90(a)),
)


def sample_names() -> list[str]:
    """Names of the base set, in the order write_sample_photos uses them."""
    return [s.name for s in _SAMPLES]


def _load(sample: _Sample) -> np.ndarray:
    from skimage import data

    image = getattr(data, sample.loader)()
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
        image = image[0]
    if image.dtype == bool:
        image = np.where(image, 255, 0).astype(np.uint8)
    return np.ascontiguousarray(image)


def _shrink(image: np.ndarray) -> np.ndarray:
    step = -(-max(image.shape[:2]) // _MAX_SIDE)
    return image[::step, ::step] if step > 1 else image


def _save(image: np.ndarray, path: Path, fmt: str) -> None:
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image))
    if fmt == "JPEG":
        pil.convert("L" if pil.mode == "L" else "RGB").save(path, "JPEG", quality=90)
    else:
        pil.save(path, "PNG")


def write_sample_photos(directory: Path, count: int | None = None) -> list[Path]:
    """Write `count` sample images (default: the whole base set) into `directory`.

    Beyond the base set, flipped/cropped/resized/rotated variants keep every name unique.
    """
    total = len(_SAMPLES) if count is None else count
    if total < 0:
        raise ValueError("count must be zero or more")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cache: dict[str, np.ndarray] = {}
    written: list[Path] = []
    for i in range(total):
        sample = _SAMPLES[i % len(_SAMPLES)]
        if sample.name not in cache:
            cache[sample.name] = _shrink(_load(sample))
        image, stem = cache[sample.name], sample.name
        cycle = i // len(_SAMPLES)
        if cycle:
            label, transform = _VARIANTS[(cycle - 1) % len(_VARIANTS)]
            image, stem = transform(image), f"{stem}-v{cycle}-{label}"
        path = directory / f"{stem}.{'jpg' if sample.fmt == 'JPEG' else 'png'}"
        _save(image, path, sample.fmt)
        written.append(path)
    logger.debug("wrote %d sample photos to %s", len(written), directory)
    return written
