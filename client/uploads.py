"""Turn what a user hands to `submit` into an upload: image files, one archive, or URIs."""

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

IMAGE_SUFFIXES = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".gif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".ico",
        ".tga",
    ]
)
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
MANIFEST_SUFFIXES = (".txt", ".json")


class LazyFile:
    """A seekable reader that opens its file only while httpx streams it.

    One multipart request may carry thousands of files; keeping them all open would exhaust
    file descriptors, so each is opened on first read and closed at its end.
    """

    def __init__(self, path: Path, size: int, on_read: Callable[[int], None]) -> None:
        self.path, self.size, self._on_read = path, size, on_read
        self._pos = 0
        self._fh: BinaryIO | None = None

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}[whence]
        self._pos = base + offset
        if self._fh is not None:
            self._fh.seek(self._pos)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if self._fh is None:
            if self._pos >= self.size:
                return b""
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed at end of data below
            self._fh.seek(self._pos)
        data = self._fh.read(size)
        self._pos += len(data)
        if data:
            self._on_read(len(data))
        if not data or self._pos >= self.size:
            self._fh.close()
            self._fh = None
        return data


def is_uri(item: str) -> bool:
    """http(s) URLs, and file: URIs the API may read under its allowed roots."""
    return item.startswith(("http://", "https://", "file:"))


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    return ".tar.gz" if name.endswith(".tar.gz") else path.suffix.lower()


def expand_images(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """(upload name, path) for files as given and image files found recursively in folders."""
    found: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.suffix.lower() in IMAGE_SUFFIXES:
                    found.append(((Path(path.name) / child.relative_to(path)).as_posix(), child))
        elif path.is_file():
            found.append((path.name, path))
        else:
            raise FileNotFoundError(f"no such file or folder: {raw}")
    return found


def read_manifest(path: Path) -> list[str]:
    """URIs from a .txt (one per line, # comments) or .json (a list or {"uris": [...]}) file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        uris = data.get("uris") if isinstance(data, dict) else data
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise ValueError(f'{path}: expected a JSON list of URIs or {{"uris": [...]}}')
        return uris
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def collect_uris(items: list[str | Path]) -> list[str] | None:
    """The URIs when every item is a URL or a manifest file; None when all are local files."""
    uris: list[str] = []
    local = 0
    for item in items:
        if isinstance(item, str) and is_uri(item):
            uris.append(item)
        elif Path(item).is_file() and suffix_of(Path(item)) in MANIFEST_SUFFIXES:
            uris.extend(read_manifest(Path(item)))
        else:
            local += 1
    if uris and local:
        raise ValueError("cannot mix URLs/manifests with local files in one job; submit them separately")
    if not uris and local == 0:
        raise ValueError("the manifest lists no URIs")
    return uris or None


def collect_files(items: list[str | Path]) -> list[tuple[str, Path, int]]:
    """(upload name, path, size) of every file to upload; an archive must come alone."""
    found = expand_images(items)
    archives = [p for _, p in found if suffix_of(p) in ARCHIVE_SUFFIXES]
    if archives and len(found) > 1:
        raise ValueError(f"an archive ({archives[0].name}) must be submitted on its own")
    if not found:
        raise ValueError(f"no image files found in {', '.join(str(i) for i in items)}")
    return [(name, path, path.stat().st_size) for name, path in found]
