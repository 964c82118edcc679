"""Where labelled images come from: an ImageFolder tree (one folder per class) or (path, label) pairs."""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from imagebatch.worker.training.errors import DatasetError

# Archive and OS droppings that are never part of a dataset.
_IGNORED_DIRS = {"__MACOSX", "@eaDir"}


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    rel: str  # POSIX path relative to the source root: the name in reports, the split and the dataset hash
    label: str


@dataclass(frozen=True)
class Source:
    """The files of one source and its classes (for a folder: every class folder, even an empty one)."""

    root: Path | None
    files: list[LabelledFile]
    classes: list[str]
    ignored: list[str]  # files without an image extension, or outside any class folder


def _image_extensions() -> set[str]:
    return {ext.lower() for ext in Image.registered_extensions()}


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name not in _IGNORED_DIRS


def _dataset_root(root: Path) -> Path:
    """Descend through lone wrapper folders: an archive of photos/cat, photos/dog has its classes one level down."""
    while True:
        children = [c for c in root.iterdir() if _visible(c)]
        if len(children) == 1 and children[0].is_dir():
            inner = [c for c in children[0].iterdir() if _visible(c)]
            if sum(c.is_dir() for c in inner) >= 2:
                root = children[0]
                continue
        return root


def _walk(folder: Path) -> Iterable[Path]:
    """Files at any depth, in a stable order, skipping hidden files and folders."""
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if _visible(Path(d)))
        for name in sorted(files):
            if _visible(Path(name)):
                yield Path(current) / name


def scan_image_folder(root: Path | str) -> Source:
    """The ImageFolder layout: each folder under root is a class, its images at any depth below it."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    root = _dataset_root(root)
    extensions = _image_extensions()
    classes = sorted(c.name for c in root.iterdir() if c.is_dir() and _visible(c))
    files, ignored = [], [p.name for p in root.iterdir() if p.is_file() and _visible(p)]
    for name in classes:
        for path in _walk(root / name):
            rel = path.relative_to(root).as_posix()
            if path.suffix.lower() in extensions:
                files.append(LabelledFile(path, rel, name))
            else:
                ignored.append(rel)
    return Source(root, files, classes, sorted(ignored))


def from_pairs(pairs: Iterable[tuple[Path | str, str]]) -> Source:
    """A list of (path, label); names are relative to the files' common folder. A repeated pair counts once."""
    labels: dict[Path, str] = {}
    for path, label in pairs:
        path, label = Path(path).absolute(), str(label)
        if not label.strip():
            raise DatasetError(f"{path} has an empty label")
        if labels.setdefault(path, label) != label:
            raise DatasetError(f"{path} is listed with two labels: {labels[path]!r} and {label!r}")
    if not labels:
        raise DatasetError("no labelled images were given")
    base = Path(os.path.commonpath([path.parent for path in labels]))
    files = [LabelledFile(path, path.relative_to(base).as_posix(), label) for path, label in labels.items()]
    return Source(None, files, sorted(set(labels.values())), [])
