"""A labelled set for training or evaluation: an ImageFolder folder (zipped here, class folders kept) or an archive."""

import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagebatch.client.uploads import ARCHIVE_SUFFIXES, IMAGE_SUFFIXES, suffix_of


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in ("__MACOSX", "@eaDir")


def zip_image_folder(folder: Path, target: Path) -> int:
    """Zip `folder`'s class folders (images at any depth, empty class folders too) into `target`.

    Members are relative to `folder`, so its subfolders are the archive's classes. Images are
    stored without compression (they are compressed already). Returns the number of images.
    """
    count = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for current, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if _visible(d))
            base = Path(current).relative_to(folder)
            for name in dirs:
                archive.writestr(f"{(base / name).as_posix()}/", b"")  # an empty class folder still shows
            for name in sorted(files):
                if _visible(name) and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                    archive.write(Path(current) / name, (base / name).as_posix())
                    count += 1
    return count


@contextmanager
def labelled_archive(path: str | Path) -> Iterator[Path]:
    """The archive to upload for `path`: an ImageFolder folder zipped to a temporary file, or the archive itself."""
    path = Path(path).expanduser()
    if path.is_dir():
        with tempfile.TemporaryDirectory(prefix="imagebatch-upload-") as tmp:
            target = Path(tmp) / f"{path.name or 'dataset'}.zip"
            if zip_image_folder(path, target) == 0:
                raise ValueError(f"no images in {path}: put them in one folder per class (ImageFolder layout)")
            yield target
        return
    if path.is_file() and suffix_of(path) in ARCHIVE_SUFFIXES:
        yield path
        return
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    raise ValueError(f"{path}: give a folder with one subfolder per class, or a .zip/.tar/.tar.gz of one")
