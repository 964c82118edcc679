"""The calibration set is fixed: same photos and transforms, same tensors and hash."""

from pathlib import Path

import pytest
import torch

from imagebatch.worker.modeltools.calibration import calibration_set, sample_training_paths, tensor_digest
from tests.harness.photosets import CALIBRATION_PHOTOS, calibration_photos


@pytest.fixture(scope="module")
def transform(resnet18):
    return resnet18.transform


def test_same_photos_written_twice_give_the_same_hash(tmp_path: Path, transform) -> None:
    first = calibration_set(calibration_photos(tmp_path / "a"), transform)
    second = calibration_set(calibration_photos(tmp_path / "b"), transform)
    assert first.sha256 == second.sha256
    assert first.size == CALIBRATION_PHOTOS
    assert [b.shape[0] for b in first.batches] == [32, 32]
    assert all(torch.equal(a, b) for a, b in zip(first.batches, second.batches, strict=True))


def test_order_and_content_change_the_hash(tmp_path: Path, transform) -> None:
    paths = calibration_photos(tmp_path)[:8]
    base = calibration_set(paths, transform, batch_size=4)
    assert calibration_set(paths[::-1], transform, batch_size=4).sha256 != base.sha256
    assert calibration_set(paths[:7], transform, batch_size=4).sha256 != base.sha256
    nudged = [b.clone() for b in base.batches]
    nudged[0][0, 0, 0, 0] += 1e-6
    assert tensor_digest(nudged) != base.sha256


def test_training_sample_is_reproducible_and_listing_order_free(tmp_path: Path) -> None:
    paths = [tmp_path / f"class{c}" / f"img{i:03d}.png" for c in range(3) for i in range(40)]
    sample = sample_training_paths(paths, 16, seed=7)
    assert len(sample) == len(set(sample)) == 16
    assert sample == sample_training_paths(list(reversed(paths)), 16, seed=7)
    assert sample != sample_training_paths(paths, 16, seed=8)
    assert sample_training_paths(paths[:5], 16) == sorted(paths[:5])


def test_empty_calibration_set_is_refused(transform) -> None:
    with pytest.raises(ValueError, match="at least one image"):
        calibration_set([], transform)
