"""Where labelled images come from: an ImageFolder tree (one folder per class) or (path, label) pairs."""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from imagebatch.core.datasets import image_folder_layout, visible
from imagebatch.worker.training.errors import DatasetError


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


def _tree(root: Path) -> tuple[list[str], list[str]]:
    """Every visible file and folder below root, as POSIX paths relative to it (symlinked folders not entered)."""
    files, dirs = [], []
    for current, subdirs, names in os.walk(root, followlinks=False):
        subdirs[:] = sorted(d for d in subdirs if visible(d))
        base = Path(current).relative_to(root)
        dirs += [(base / d).as_posix() for d in subdirs]
        files += [(base / n).as_posix() for n in sorted(names) if visible(n)]
    return files, dirs


def scan_image_folder(root: Path | str) -> Source:
    """The ImageFolder layout (core.datasets' rule, the API's too): each folder under root is a class,
    its images at any depth below it; lone wrapper folders are descended."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    extensions = _image_extensions()
    files, dirs = _tree(root)
    layout = image_folder_layout(files, lambda name: Path(name).suffix.lower() in extensions, dirs)
    base = root / layout.root if layout.root else root
    labelled = [LabelledFile(base / rel, rel, label) for rel, label in layout.files]
    return Source(base, labelled, layout.classes, sorted(layout.ignored))


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
