"""Fixed, hashed calibration sets for post-training int8 quantization."""

import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed calibration batches and the SHA-256 of their exact float32 contents.

    The hash covers the tensors the observers saw (after the model's transforms), so a change of
    photos, of their order or of the preprocessing yields a new hash and thus a new cached model.
    """

    batches: tuple[torch.Tensor, ...]
    sha256: str
    sources: tuple[str, ...]

    @property
    def size(self) -> int:
        return sum(b.shape[0] for b in self.batches)


def tensor_digest(batches: Sequence[torch.Tensor]) -> str:
    """SHA-256 over the shapes and float32 bytes of `batches`, in order."""
    digest = hashlib.sha256()
    for batch in batches:
        data = batch.detach().to(torch.float32).contiguous()
        digest.update(repr(tuple(data.shape)).encode())
        digest.update(data.numpy().tobytes())
    return digest.hexdigest()


def _load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        # The worker's reader applies EXIF orientation and converts to RGB the same way.
        return ImageOps.exif_transpose(image).convert("RGB")


def calibration_set(
    paths: Sequence[Path], transform: Callable[[Image.Image], torch.Tensor], batch_size: int = DEFAULT_BATCH_SIZE
) -> CalibrationSet:
    """Decode, preprocess and batch `paths` in the order given (the order is part of the hash)."""
    if not paths:
        raise ValueError("a calibration set needs at least one image")
    if batch_size < 1:
        raise ValueError("batch_size must be 1 or more")
    tensors = [transform(_load_rgb(Path(p))) for p in paths]
    batches = tuple(
        torch.stack(tensors[i : i + batch_size]).contiguous(memory_format=torch.channels_last)
        for i in range(0, len(tensors), batch_size)
    )
    result = CalibrationSet(batches=batches, sha256=tensor_digest(batches), sources=tuple(Path(p).name for p in paths))
    logger.info("calibration set: %d images in %d batches, sha256 %s", result.size, len(batches), result.sha256[:12])
    return result


def sample_training_paths(paths: Sequence[Path], count: int, seed: int = 0) -> list[Path]:
    """A reproducible sample of a custom model's training images: same files and seed, same sample.

    Paths are sorted first so the sample does not depend on directory listing order.
    """
    ordered = sorted(Path(p) for p in paths)
    if count >= len(ordered):
        return ordered
    return sorted(random.Random(seed).sample(ordered, count))
