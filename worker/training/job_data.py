"""A training job's labelled images, from its manifest in blob storage to a local ImageFolder the engine reads."""

import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imagebatch.core.datasets import visible
from imagebatch.core.storage import get_store
from imagebatch.core.training import GIVEN_SPLIT_FORMAT, MANIFEST_FORMAT, MANIFEST_NAME
from imagebatch.worker.preprocess import UnusableImage
from imagebatch.worker.reader import Reader
from imagebatch.worker.training import DatasetError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalData:
    root: Path  # one folder per class
    classes: list[str]
    skipped: list[dict]  # files that could not be fetched: {rel, label, category, message}
    val_root: Path | None = None  # the given validation folder (same classes), or None: split root's files


def read_manifest(prefix: str) -> dict:
    manifest = json.loads(get_store().read_bytes(f"{prefix}{MANIFEST_NAME}"))
    if manifest.get("format") not in (MANIFEST_FORMAT, GIVEN_SPLIT_FORMAT):
        expected = f"{MANIFEST_FORMAT} or {GIVEN_SPLIT_FORMAT}"
        raise DatasetError(f"training manifest has format {manifest.get('format')!r}, expected {expected}")
    return manifest


def _local_path(root: Path, rel: str) -> Path:
    """The file's place under root; a path that could leave it (never written by the API) is refused."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or not all(visible(p) and p != ".." for p in parts):
        raise DatasetError(f"training manifest names an unsafe path {rel!r}")
    return root.joinpath(*parts)


def _fetch(reader: Reader, root: Path, entry: dict) -> dict | None:
    """Copy one image to its class folder; a file that cannot be fetched is reported, not fatal."""
    path = _local_path(root, entry["path"])
    try:
        data = reader.fetch_bytes(entry["location"])
    except UnusableImage as exc:
        label = entry["path"].split("/", 1)[0]
        return {"rel": entry["path"], "label": label, "category": exc.failure.category, "message": exc.failure.message}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return None


def _fetch_all(reader: Reader, root: Path, classes: list[str], entries: list[dict]) -> list[dict]:
    """Every class gets its folder first, so a class whose files all failed to arrive is reported
    by the data step as empty instead of silently vanishing."""
    for name in classes:
        _local_path(root, name).mkdir(parents=True, exist_ok=True)
    results = reader.pool.map(lambda entry: _fetch(reader, root, entry), entries)
    return [failure for failure in results if failure is not None]


def fetch_training_data(reader: Reader, prefix: str, root: Path) -> LocalData:
    """Every file of the manifest under root/<class>/..., fetched on the reader's threads; with a given
    validation folder, the training files under root/train/<class>/... and the others under root/val/."""
    manifest = read_manifest(prefix)
    classes = list(manifest["classes"])
    given: list[dict] | None = manifest.get("val_files")
    if given is None:
        skipped = _fetch_all(reader, root, classes, manifest["files"])
        local = LocalData(root, classes, skipped)
    else:
        skipped = _fetch_all(reader, root / "train", classes, manifest["files"])
        val_skipped = _fetch_all(reader, root / "val", classes, given)
        skipped += [{**failure, "rel": f"val/{failure['rel']}"} for failure in val_skipped]
        local = LocalData(root / "train", classes, skipped, root / "val")
    total = len(manifest["files"]) + len(given or [])
    logger.info("fetched %d training image(s), %d failed", total - len(skipped), len(skipped))
    return local
