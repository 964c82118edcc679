"""Sample photos: they decode, names are unique, the count is honoured."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagebatch.worker.samples import sample_names, write_sample_photos


def test_base_set_decodes_with_jpeg_png_and_grayscale(tmp_path: Path):
    paths = write_sample_photos(tmp_path)
    assert len(paths) == len(sample_names()) >= 15
    formats, modes = set(), set()
    for path in paths:
        with Image.open(path) as img:
            img.load()  # a truncated file raises here
            formats.add(img.format)
            modes.add(img.mode)
            assert max(img.size) <= 800
    assert formats == {"JPEG", "PNG"} and {"RGB", "L"} <= modes
    assert sum(p.suffix == ".jpg" for p in paths) > len(paths) / 2


@pytest.mark.parametrize("count", [0, 3, 47])
def test_count_is_honoured_with_unique_names(tmp_path: Path, count: int):
    paths = write_sample_photos(tmp_path / "out", count)
    assert len(paths) == count == len({p.name for p in paths})
    assert sorted(paths) == sorted((tmp_path / "out").iterdir())


def test_variants_change_the_pixels(tmp_path: Path):
    n = len(sample_names())
    paths = write_sample_photos(tmp_path, 2 * n + 1)
    original, flipped, cropped = paths[0], paths[n], paths[2 * n]
    assert "-v1-" in flipped.name and "-v2-" in cropped.name
    base = np.asarray(Image.open(original).convert("L"), dtype=np.int16)
    mirror = np.asarray(Image.open(flipped).convert("L"), dtype=np.int16)[:, ::-1]
    # Mirroring back recovers the original up to JPEG noise; the stored pixels themselves differ.
    assert np.abs(mirror - base).mean() < 3
    assert np.abs(mirror[:, ::-1] - base).mean() > 10
    with Image.open(original) as a, Image.open(cropped) as b:
        assert b.size[0] < a.size[0] and b.size[1] < a.size[1]
