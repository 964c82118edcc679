"""Blob storage for uploaded images and their thumbnails: a local directory by default, any fsspec URL otherwise."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any, BinaryIO, Protocol

from fsspec.core import url_to_fs

from imagebatch.core.config import settings

_COPY_BUFFER = 1024 * 1024


class Readable(Protocol):
    """What write_stream copies from: any object with read(size) -> bytes (a file, a hashing reader)."""

    def read(self, size: int = -1, /) -> bytes: ...


class BlobStore:
    """Keys are relative paths such as '<job id>/000001-cat.jpg' under one root URL."""

    def __init__(self, root_url: str) -> None:
        self.fs, root = url_to_fs(root_url)
        self.root = root.rstrip("/")
        self.fs.makedirs(self.root, exist_ok=True)

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _make_parent(self, key: str) -> None:
        self.fs.makedirs(self.path(key).rsplit("/", 1)[0], exist_ok=True)

    def write_stream(self, key: str, stream: "Readable") -> int:
        """Copy a file-like object to storage in 1 MiB pieces; returns bytes written."""
        written = 0
        self._make_parent(key)
        with self.fs.open(self.path(key), "wb") as out:
            while block := stream.read(_COPY_BUFFER):
                out.write(block)
                written += len(block)
        return written

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store a small object whole (a thumbnail or a preview)."""
        self._make_parent(key)
        self.fs.pipe_file(self.path(key), data)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        with self.fs.open(self.path(key), "rb") as f:
            yield f

    def iter_blocks(self, key: str, size: int = 256 * 1024) -> Iterator[bytes]:
        """The blob in blocks of `size` bytes, opened on the first block (a streamed response's body)."""
        with self.open(key) as handle:
            while block := handle.read(size):
                yield block

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self.path(key))

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` (a ranged GET on an object store); FileNotFoundError if the key is gone."""
        return self.fs.cat_file(self.path(key), start=offset, end=offset + length)

    def delete_prefix(self, prefix: str) -> None:
        target = self.path(prefix.rstrip("/"))
        if self.fs.exists(target):
            self.fs.rm(target, recursive=True)

    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def children(self, prefix: str) -> list[str]:
        """Names of the folders (and objects) directly under `prefix` ("": the root); [] when there is none."""
        target = self.path(prefix.rstrip("/")) if prefix else self.root
        if not self.fs.exists(target):
            return []
        return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(target, detail=False)]

    def idle_seconds(self, prefix: str) -> float | None:
        """Seconds since anything under `prefix` was last written (an upload in progress keeps
        writing); None when the store gives no modification times."""
        entries: dict[str, Any] = self.fs.find(self.path(prefix.rstrip("/")), detail=True, withdirs=True)
        stamps = [stamp for info in entries.values() if (stamp := _modified(info)) is not None]
        return time.time() - max(stamps) if stamps else None


def _modified(info: dict[str, Any]) -> float | None:
    """A listing entry's modification time as a Unix timestamp (local files: mtime; object stores: LastModified)."""
    value = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if isinstance(value, int | float) else None


@cache
def get_store() -> BlobStore:
    return BlobStore(settings.storage_url)
