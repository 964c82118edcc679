"""The data step: files checked by the reader's rules, classes checked, a seeded stratified split, a stable hash."""

import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imagebatch.core import errors
from imagebatch.worker.training import DatasetError, TrainingConfig, prepare_dataset
from imagebatch.worker.training.dataset import stratified_split
from imagebatch.worker.training.images import BatchTransform

CONFIG = TrainingConfig(image_size=32, val_fraction=0.5, seed=3)
ORIENTATION = 0x0112


def _image(path: Path, seed: int, size: tuple[int, int] = (40, 30), mode: str = "RGB", **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    image = image.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else image.convert(mode)
    image.save(path, **save)
    return path


def _huge_png_header(path: Path) -> None:
    """A PNG whose header claims 30000x30000 pixels: over Pillow's limit before any pixel is read."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def _classes(root: Path, counts: dict[str, int]) -> Path:
    for label, count in counts.items():
        for i in range(count):
            _image(root / label / f"{i:03d}.png", seed=hash((label, i)) % 1000)
    return root


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """Two classes with images at several depths and one bad file of each kind."""
    root = tmp_path / "messy"
    _image(root / "cat" / "a.jpg", 1)
    _image(root / "cat" / "deep" / "er" / "b.png", 2, mode="RGBA")
    _image(root / "cat" / "c.png", 3, mode="P")
    data = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(noise).save(data, format="JPEG")  # noise: the cut lands in the scan data, past the header
    (root / "cat" / "cut.jpg").write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    _huge_png_header(root / "cat" / "huge.png")
    (root / "cat" / "readme.txt").write_text("a note, not an image")
    _image(root / "dog" / "d.png", 4, mode="L")
    _image(root / "dog" / "e.jpg", 5)
    _image(root / "dog" / "sub" / "f.webp", 6)
    (root / "dog" / "empty.jpg").write_bytes(b"")
    (root / "dog" / "notes.jpg").write_text("text named like a photo\n" * 10)
    (root / ".DS_Store").write_bytes(b"\0\1")
    _image(root / "__MACOSX" / "cat" / "._a.jpg", 7)
    _image(root / "stray.png", 8)
    return root


def test_images_at_any_depth_are_used_and_bad_files_listed_with_their_category(messy: Path) -> None:
    dataset = prepare_dataset(messy, CONFIG)
    report = dataset.report

    assert dataset.classes == report.classes == ["cat", "dog"]
    assert {s.rel: s.category for s in report.skipped} == {
        "cat/cut.jpg": errors.TRUNCATED,
        "cat/huge.png": errors.TOO_LARGE,
        "dog/empty.jpg": errors.EMPTY_FILE,
        "dog/notes.jpg": errors.UNREADABLE,
    }
    assert all(s.message for s in report.skipped)
    assert report.ignored == ["cat/readme.txt", "stray.png"]
    assert report.counts == {"cat": {"train": 1, "val": 2}, "dog": {"train": 1, "val": 2}}  # round(3 * 0.5) == 2
    used = sorted(str(p.relative_to(messy)) for p in dataset.train.paths + dataset.val.paths)
    assert used == ["cat/a.jpg", "cat/c.png", "cat/deep/er/b.png", "dog/d.png", "dog/e.jpg", "dog/sub/f.webp"]
    assert any("4 file(s) skipped" in w for w in report.warnings)
    # Every usable image, whatever its mode, is RGB with its short side at the resize size.
    for images in (dataset.train, dataset.val):
        for i in range(len(images)):
            assert images.image(i).dtype == torch.uint8
            assert images.image(i).shape[0] == 3 and min(images.image(i).shape[1:]) == dataset.preprocessing.resize_size


def test_decoding_applies_exif_orientation_and_matches_the_inference_transform(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # stored landscape, displayed portrait
    rotated = _image(tmp_path / "data" / "a" / "rotated.jpg", 1, size=(64, 40), exif=exif, quality=95)
    _image(tmp_path / "data" / "a" / "plain.png", 2, size=(50, 70))
    _classes(tmp_path / "data", {"b": 2})
    dataset = prepare_dataset(tmp_path / "data", CONFIG)
    images = {p.name: i for i, p in enumerate(dataset.train.paths + dataset.val.paths)}
    everything = [dataset.train.image(i) for i in range(len(dataset.train))] + [
        dataset.val.image(i) for i in range(len(dataset.val))
    ]
    stored = everything[images["rotated.jpg"]]
    assert stored.shape[1] > stored.shape[2]  # taller than wide, as displayed

    # Center crop + normalisation of the stored image == the saved model's transform on the original file.
    reference = Image.open(rotated)
    from PIL import ImageOps

    reference = ImageOps.exif_transpose(reference).convert("RGB")
    ours = BatchTransform(dataset.preprocessing, train=False, augment=False, crop_scale_min=1.0)([stored])[0]
    theirs = dataset.preprocessing.inference_transform()(reference)
    assert ours.shape == theirs.shape == (3, 32, 32)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_a_wrapping_folder_from_an_archive_is_descended(tmp_path: Path) -> None:
    _classes(tmp_path / "extracted" / "photos", {"cat": 2, "dog": 2})
    dataset = prepare_dataset(tmp_path / "extracted", CONFIG)
    assert dataset.classes == ["cat", "dog"]
    assert dataset.report.root == str(tmp_path / "extracted" / "photos")


def test_fewer_than_two_classes_is_a_value_error_naming_what_was_found(tmp_path: Path) -> None:
    _classes(tmp_path / "one", {"cat": 3})
    with pytest.raises(DatasetError, match="at least 2 classes.*found only 'cat'") as caught:
        prepare_dataset(tmp_path / "one", CONFIG)
    assert isinstance(caught.value, ValueError)
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetError, match="found none"):
        prepare_dataset(tmp_path / "none", CONFIG)


def test_an_empty_class_is_named(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"cat": 2, "dog": 2})
    (root / "bird").mkdir()
    (root / "fish").mkdir()
    (root / "fish" / "broken.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"'bird', 'fish' \(all 1 files unusable\)"):
        prepare_dataset(root, CONFIG)


def test_a_validation_folder_replaces_the_split_and_must_use_known_classes(tmp_path: Path) -> None:
    train = _classes(tmp_path / "train", {"cat": 3, "dog": 2})
    val = _classes(tmp_path / "val", {"cat": 1, "dog": 2})
    dataset = prepare_dataset(train, CONFIG, val_source=val)
    assert (len(dataset.train), len(dataset.val)) == (5, 3)
    assert dataset.split["method"] == "given"
    assert dataset.split["val_files"] == ["cat/000.png", "dog/000.png", "dog/001.png"]
    (val / "dog" / "000.png").write_bytes(b"")
    (val / "dog" / "001.png").write_bytes(b"not an image")
    report = prepare_dataset(train, CONFIG, val_source=val).report
    assert report.counts["dog"] == {"train": 2, "val": 0}
    assert "class 'dog' has no usable image in the validation folder" in " ".join(report.warnings)
    _classes(val, {"bird": 1})
    with pytest.raises(DatasetError, match="validation class.*'bird'"):
        prepare_dataset(train, CONFIG, val_source=val)


def test_stratified_split_is_seeded_per_class_and_covers_every_image() -> None:
    labels = [0] * 10 + [1] * 20 + [2] * 3 + [3] * 1
    train, val = stratified_split(labels, 0.2, seed=7)
    assert sorted(train + val) == list(range(len(labels)))
    assert [sum(labels[i] == c for i in val) for c in range(4)] == [2, 4, 1, 0]
    assert stratified_split(labels, 0.2, seed=7) == (train, val)
    assert stratified_split(labels, 0.2, seed=8) != (train, val)


def test_imbalance_and_single_image_classes_are_warned_about(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"many": 12, "few": 2, "one": 1})
    report = prepare_dataset(root, CONFIG).report
    assert report.imbalance_ratio == 12.0
    assert any("imbalanced: 'many' has 12 images, 'one' 1 (12.0x" in w for w in report.warnings)
    assert any("'one' has only 1 usable image" in w for w in report.warnings)
    assert report.counts["one"] == {"train": 1, "val": 0}


def test_no_image_left_for_validation_is_an_error(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"a": 1, "b": 1})
    with pytest.raises(DatasetError, match="no image left for validation"):
        prepare_dataset(root, CONFIG)


def test_dataset_hash_follows_content_and_labels_not_location(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"cat": 3, "dog": 3})
    original = prepare_dataset(root, CONFIG).sha256
    assert prepare_dataset(shutil.copytree(root, tmp_path / "elsewhere"), CONFIG).sha256 == original
    pairs = [(p, p.parent.name) for p in sorted(root.rglob("*.png"))]
    assert prepare_dataset(pairs, CONFIG).sha256 == original
    (root / "dog").rename(root / "wolf")
    assert prepare_dataset(root, CONFIG).sha256 != original
    _image(tmp_path / "elsewhere" / "cat" / "000.png", seed=99)
    assert prepare_dataset(tmp_path / "elsewhere", CONFIG).sha256 != original


def test_pairs_with_conflicting_or_empty_labels_are_errors(tmp_path: Path) -> None:
    a = _image(tmp_path / "a.png", 1)
    with pytest.raises(DatasetError, match="listed with two labels: 'x' and 'y'"):
        prepare_dataset([(a, "x"), (a, "y")], CONFIG)
    with pytest.raises(DatasetError, match="empty label"):
        prepare_dataset([(a, " ")], CONFIG)


def test_over_the_memory_budget_images_are_decoded_again_on_use(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"cat": 3, "dog": 3})
    held, streamed = prepare_dataset(root, CONFIG), prepare_dataset(root, CONFIG, cache_bytes=0)
    assert held.report.in_memory and not streamed.report.in_memory
    assert streamed.train.paths == held.train.paths
    for i in range(len(held.train)):
        assert torch.equal(streamed.train.image(i), held.train.image(i))


def test_files_over_the_byte_limit_are_skipped_as_too_large(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"cat": 2, "dog": 2})
    _image(root / "dog" / "big.png", 1, size=(300, 300))
    dataset = prepare_dataset(root, CONFIG, max_file_bytes=20_000)
    assert [(s.rel, s.category) for s in dataset.report.skipped] == [("dog/big.png", errors.TOO_LARGE)]
    assert "over the limit of 20000" in dataset.report.skipped[0].message
