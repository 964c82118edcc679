"""Calibration and held-out photo sets for the int8, export and Grad-CAM tests (offline, deterministic)."""

from pathlib import Path

import torch

from bench.images import write_bench_images
from imagebatch.worker.samples import write_sample_photos

CALIBRATION_PHOTOS = 64  # the 20 scikit-image photos and 44 variants: two batches of 32
HELD_OUT_PHOTOS = 32


def calibration_photos(directory: Path) -> list[Path]:
    """The photos a built-in model is calibrated on: the project's sample set, in its fixed order."""
    return write_sample_photos(directory, CALIBRATION_PHOTOS)


def held_out_photos(directory: Path) -> list[Path]:
    """Other framings of the same scenes with sensor noise: photos the observers never saw."""
    return write_bench_images(directory, HELD_OUT_PHOTOS, seed=5)


def probabilities(outputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return outputs[0].float().softmax(dim=-1)
