"""The data step: validate every image, check the classes, split train/validation, report and hash."""

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from imagebatch.core import errors
from imagebatch.core.config import settings
from imagebatch.worker.preprocess import ImageFailure
from imagebatch.worker.training.config import TrainingConfig
from imagebatch.worker.training.errors import DatasetError
from imagebatch.worker.training.images import DEFAULT_CACHE_BYTES, Decoded, ImageSet, Preprocessing, decode_file
from imagebatch.worker.training.sources import LabelledFile, Source, from_pairs, scan_image_folder

logger = logging.getLogger(__name__)

DEFAULT_IMBALANCE_RATIO = 5.0  # largest/smallest class above this earns a warning
SourceLike = Path | str | Iterable[tuple[Path | str, str]]


@dataclass(frozen=True)
class SkippedFile:
    rel: str
    label: str
    category: str  # one of imagebatch.core.errors
    message: str


@dataclass(frozen=True)
class DatasetReport:
    root: str | None  # the folder whose subfolders are the classes (after descending lone wrapper folders)
    classes: list[str]
    counts: dict[str, dict[str, int]]  # class -> {"train": n, "val": m}
    skipped: list[SkippedFile]
    ignored: list[str]
    imbalance_ratio: float  # largest / smallest class (usable images)
    warnings: list[str]
    in_memory: bool  # decoded images kept in memory (else decoded again every epoch)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PreparedDataset:
    classes: list[str]
    train: ImageSet
    val: ImageSet
    preprocessing: Preprocessing
    report: DatasetReport
    sha256: str
    split: dict  # method, seed, val_fraction, val_files (relative names)


@dataclass(frozen=True)
class _Usable:
    file: LabelledFile
    role: str  # "" for the training source, "val" for a given validation folder
    sha256: str


def _as_source(source: SourceLike) -> Source:
    return scan_image_folder(source) if isinstance(source, (str, Path)) else from_pairs(source)


def _decode_all(files: Sequence[tuple[str, LabelledFile]], side: int, max_bytes: int) -> Iterator[Decoded]:
    """decode_file over files, in order, one thread per core: Pillow releases the GIL while decoding and resizing."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="validate") as pool:
        yield from pool.map(lambda item: decode_file(item[1].path, side, max_bytes), files)


def _validate(
    files: Sequence[tuple[str, LabelledFile]], side: int, max_bytes: int, budget: int
) -> tuple[list[_Usable], list[torch.Tensor] | None, list[SkippedFile]]:
    """Decode every file once: (usable files, their images or None when over budget, skipped files)."""
    usable: list[_Usable] = []
    images: list[torch.Tensor] | None = []
    skipped: list[SkippedFile] = []
    held = 0
    for (role, file), decoded in zip(files, _decode_all(files, side, max_bytes), strict=True):
        if decoded.image is None:
            failure = decoded.failure or ImageFailure(errors.UNREADABLE, "no image")
            skipped.append(SkippedFile(file.rel, file.label, failure.category, failure.message))
            continue
        usable.append(_Usable(file, role, decoded.sha256))
        if images is not None:
            held += decoded.image.numel()
            images = images if held <= budget else None
        if images is not None:
            images.append(decoded.image)
    if images is None:
        logger.info("decoded images exceed %d bytes: decoding them again every epoch", budget)
    return usable, images, skipped


def stratified_split(labels: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded per-class split: round(n * val_fraction) of each class to validation, at least 1 when n >= 2."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    for label in sorted(by_class):
        members = [by_class[label][i] for i in rng.permutation(len(by_class[label]))]
        n = len(members)
        n_val = min(max(round(n * val_fraction), 1), n - 1) if n >= 2 else 0
        val += members[:n_val]
        train += members[n_val:]
    return sorted(train), sorted(val)


def dataset_sha256(entries: Iterable[tuple[str, str, str, str]]) -> str:
    """SHA-256 over sorted (role, relative path, label, file SHA-256) lines: content and labels, not location."""
    digest = hashlib.sha256()
    for role, rel, label, sha in sorted(entries):
        digest.update(f"{role}\t{rel}\t{label}\t{sha}\n".encode())
    return digest.hexdigest()


def _check_classes(classes: list[str], counts: Counter, skipped: list[SkippedFile]) -> None:
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise DatasetError(f"training needs at least 2 classes (one folder per class), found {found}")
    empty = [name for name in classes if counts[name] == 0]
    if empty:
        lost = Counter(s.label for s in skipped)
        detail = ", ".join(
            f"{name!r}" + (f" (all {lost[name]} files unusable)" if lost[name] else "") for name in empty
        )
        raise DatasetError(f"class(es) without a usable image: {detail}; add images or remove the folder")


def _warnings(counts: Counter, classes: list[str], threshold: float, unvalidated: list[str]) -> tuple[float, list[str]]:
    largest, smallest = max(classes, key=lambda c: counts[c]), min(classes, key=lambda c: counts[c])
    ratio = counts[largest] / counts[smallest]
    notes = [
        f"class {c!r} has only 1 usable image: it is trained on but never validated"
        if counts[c] == 1
        else f"class {c!r} has no usable image in the validation folder: it is trained on but never validated"
        for c in unvalidated
    ]
    if ratio > threshold:
        notes.insert(
            0,
            f"classes are imbalanced: {largest!r} has {counts[largest]} images, {smallest!r} "
            f"{counts[smallest]} ({ratio:.1f}x, above {threshold:g}x); add images to the small classes",
        )
    return ratio, notes


def prepare_dataset(
    source: SourceLike,
    config: TrainingConfig,
    *,
    val_source: SourceLike | None = None,
    imbalance_ratio: float = DEFAULT_IMBALANCE_RATIO,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    max_file_bytes: int | None = None,
) -> PreparedDataset:
    """Validate, split and describe a labelled image set; DatasetError when it cannot train a classifier."""
    prep = Preprocessing.for_model(config.base_model, config.image_size)
    max_bytes = max_file_bytes or settings.FETCH_MAX_BYTES
    main = _as_source(source)
    val_src = _as_source(val_source) if val_source is not None else None
    files = [("", f) for f in sorted(main.files, key=lambda f: f.rel)]
    files += [("val", f) for f in sorted(val_src.files, key=lambda f: f.rel)] if val_src else []
    usable, images, skipped = _validate(files, prep.resize_size, max_bytes, cache_bytes)
    _check_classes(main.classes, Counter(u.file.label for u in usable if not u.role), skipped)
    index = {name: i for i, name in enumerate(main.classes)}
    unknown = sorted({u.file.label for u in usable if u.role} - set(index))
    if unknown:
        raise DatasetError(f"validation class(es) not in the training set: {', '.join(map(repr, unknown))}")
    everything = ImageSet(
        [u.file.path for u in usable], [index[u.file.label] for u in usable], prep.resize_size, images, max_bytes
    )
    if val_src:
        train_idx = [i for i, u in enumerate(usable) if not u.role]
        val_idx = [i for i, u in enumerate(usable) if u.role]
    else:
        train_idx, val_idx = stratified_split(everything.labels.tolist(), config.val_fraction, config.seed)
    if not val_idx:
        raise DatasetError("no image left for validation: give each class at least 2 images, or a validation folder")
    report = _report(main, usable, train_idx, val_idx, skipped, imbalance_ratio, images is not None)
    split = {
        "method": "given" if val_src else "stratified",  # given: a validation folder, val_fraction unused
        "seed": config.seed,
        "val_fraction": None if val_src else config.val_fraction,
        "val_files": [usable[i].file.rel for i in val_idx],
    }
    sha = dataset_sha256((u.role, u.file.rel, u.file.label, u.sha256) for u in usable)
    logger.info("dataset %s: %d train, %d val, %d skipped", sha[:12], len(train_idx), len(val_idx), len(skipped))
    return PreparedDataset(
        main.classes, everything.subset(train_idx), everything.subset(val_idx), prep, report, sha, split
    )


def _report(
    main: Source,
    usable: list[_Usable],
    train_idx: list[int],
    val_idx: list[int],
    skipped: list[SkippedFile],
    threshold: float,
    in_memory: bool,
) -> DatasetReport:
    classes = main.classes
    counts = {name: {"train": 0, "val": 0} for name in classes}
    for part, indices in (("train", train_idx), ("val", val_idx)):
        for i in indices:
            counts[usable[i].file.label][part] += 1
    totals = Counter({name: c["train"] + c["val"] for name, c in counts.items()})
    ratio, notes = _warnings(totals, classes, threshold, [name for name in classes if not counts[name]["val"]])
    if skipped:
        notes.insert(0, f"{len(skipped)} file(s) skipped as unusable (listed with their error category)")
    root = str(main.root) if main.root else None
    return DatasetReport(root, classes, counts, skipped, main.ignored, ratio, notes, in_memory)
