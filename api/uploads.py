"""Stream uploaded images and archive members to blob storage, numbered in arrival order."""

import hashlib
import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import IO

from imagebatch.core.config import settings
from imagebatch.core.storage import BlobStore
from imagebatch.db.lifecycle import ImageSource

IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".gif",
        ".bmp",
        ".dib",
        ".webp",
        ".tif",
        ".tiff",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".ico",
        ".tga",
    }
)
# Errors that mean one archive member cannot be read; anything else (e.g. a full disk) is ours.
_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    tarfile.TarError,
    RuntimeError,
    NotImplementedError,
)


class ArchiveError(ValueError):
    """The archive as a whole cannot be read (not an archive, corrupt, truncated)."""


class UploadLimit(ValueError):
    """The submission is over a configured size limit (answered with 413, naming the limit)."""


@dataclass(frozen=True)
class ArchiveLimits:
    members: int  # entries of any kind, skipped ones included
    uncompressed_bytes: int  # total declared size of the members we would extract
    ratio: float  # uncompressed / archive bytes: a zip bomb has thousands

    @classmethod
    def from_settings(cls) -> "ArchiveLimits":
        return cls(settings.MAX_ARCHIVE_MEMBERS, settings.MAX_ARCHIVE_UNCOMPRESSED_BYTES, settings.MAX_ARCHIVE_RATIO)


# Below this many expanded bytes the ratio does not matter (a zipped blank BMP compresses 200:1).
_RATIO_FLOOR_BYTES = 16 * 1024 * 1024
ARCHIVE_EXTENSIONS = frozenset({".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".tbz", ".txz", ".7z", ".rar", ".zst"})


def extension(name: str) -> str:
    match = re.search(r"\.[A-Za-z0-9]{1,10}$", re.split(r"[\\/]", name)[-1])
    return match.group(0).lower() if match else ""


class _Digesting:
    """Reads through to a stream, counting and hashing the bytes (an upload's Idempotency-Key fingerprint)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.hash, self.size = stream, hashlib.sha256(), 0

    def read(self, size: int = -1, /) -> bytes:
        block = self.stream.read(size)
        self.hash.update(block)
        self.size += len(block)
        return block

    def digest(self) -> str:
        return f"{self.size}:{self.hash.hexdigest()}"


class ImageSink:
    """Numbers images in arrival order and streams each one to '<job_id>/<idx:06d><ext>'."""

    def __init__(self, job_id: str, store: BlobStore, max_images: int | None = None) -> None:
        self.job_id, self.store = job_id, store
        self.max_images = max_images
        self.images: list[ImageSource] = []
        self.skipped: list[dict[str, str]] = []
        self.digests: list[str] = []  # "<size>:<sha256>" of each image, in the order of `images`

    def _next_key(self, source: str) -> str:
        if self.max_images is not None and len(self.images) >= self.max_images:
            raise UploadLimit(f"more than {self.max_images} images in one job (MAX_IMAGES_PER_JOB)")
        return f"{self.job_id}/{len(self.images):06d}{extension(source)}"

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append({"source": source, "reason": reason})

    def add(self, source: str, stream: IO[bytes]) -> None:
        key = self._next_key(source)
        reader = _Digesting(stream)
        self.store.write_stream(key, reader)
        self.images.append(ImageSource(source=source, location=f"blob:{key}"))
        self.digests.append(reader.digest())

    def add_member(self, source: str, open_member: Callable[[], AbstractContextManager[IO[bytes]]]) -> None:
        """Like add, but an unreadable archive member is skipped rather than fatal."""
        key = self._next_key(source)
        try:
            with open_member() as stream:
                reader = _Digesting(stream)
                self.store.write_stream(key, reader)
        except _MEMBER_ERRORS as exc:
            self.store.delete_prefix(key)
            self.skip(source, f"unreadable archive member: {exc}")
            return
        self.images.append(ImageSource(source=source, location=f"blob:{key}"))
        self.digests.append(reader.digest())


def member_problem(name: str, *, is_dir: bool, is_file: bool) -> str | None:
    """Why an archive member is not one of the job's images, or None if it is."""
    parts = [p for p in re.split(r"[\\/]+", name) if p not in ("", ".")]
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "unsafe path: absolute"
    if ".." in parts:
        return "unsafe path: contains '..'"
    if is_dir:
        return "directory"
    if not is_file:
        return "not a regular file"
    if "__MACOSX" in parts or (parts and parts[-1].startswith("._")):
        return "macOS metadata, not an image"
    if extension(name) in ARCHIVE_EXTENSIONS:
        return "nested archive: not extracted (send its images in the outer archive)"
    if extension(name) not in IMAGE_EXTENSIONS:
        return "not an image (by extension)"
    return None


class _Budget:
    """Counts members and declared expanded bytes; UploadLimit the moment either is over."""

    def __init__(self, limits: ArchiveLimits, archive_bytes: int) -> None:
        self.limits, self.archive_bytes = limits, max(archive_bytes, 1)
        self.members = self.expanded = 0

    def member(self, size: int, count: int = 1) -> None:
        self.members += count
        if self.members > self.limits.members:
            raise UploadLimit(f"archive has more than {self.limits.members} members (MAX_ARCHIVE_MEMBERS)")
        self.expanded += max(size, 0)
        if self.expanded > self.limits.uncompressed_bytes:
            raise UploadLimit(
                f"archive expands to more than {self.limits.uncompressed_bytes} bytes (MAX_ARCHIVE_UNCOMPRESSED_BYTES)"
            )
        ratio = self.expanded / self.archive_bytes
        if self.expanded > _RATIO_FLOOR_BYTES and ratio > self.limits.ratio:
            raise UploadLimit(
                f"archive expands {ratio:.0f}x, over the limit of {self.limits.ratio:g}x "
                "(MAX_ARCHIVE_RATIO): a zip bomb?"
            )


def _extract_zip(fileobj: IO[bytes], images: ImageSink, budget: _Budget) -> None:
    with zipfile.ZipFile(fileobj) as archive:
        infos = archive.infolist()
        if len(infos) > budget.limits.members:  # the central directory tells before anything expands
            budget.member(0, count=len(infos))
        for info in infos:
            # Declared sizes are binding: zipfile never returns more than file_size bytes.
            budget.member(info.file_size)
            name = info.filename.replace("\x00", "")
            is_link = stat.S_ISLNK(info.external_attr >> 16)
            reason = member_problem(name, is_dir=info.is_dir(), is_file=not is_link)
            if reason:
                images.skip(name, reason)
            else:
                images.add_member(name, partial(archive.open, info))


def _extract_tar(fileobj: IO[bytes], images: ImageSink, budget: _Budget) -> None:
    with tarfile.open(fileobj=fileobj, mode="r:*") as archive:
        for member in archive:
            # Every member counts, skipped ones too: reaching the next header decompresses them.
            budget.member(member.size if member.isfile() else 0)
            name = member.name.replace("\x00", "")
            reason = member_problem(name, is_dir=member.isdir(), is_file=member.isfile())
            if reason:
                images.skip(name, reason)
            else:
                images.add_member(name, partial(_tar_member, archive, member))


def _tar_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    stream = archive.extractfile(member)
    assert stream is not None  # None only for non-regular members, which member_problem skips
    return stream


def extract_archive(fileobj: IO[bytes], name: str, images: ImageSink, limits: ArchiveLimits | None = None) -> None:
    """Stream every image member of a zip or tar(.gz) to storage, one at a time, within `limits`."""
    budget = _Budget(limits or ArchiveLimits.from_settings(), fileobj.seek(0, 2))
    fileobj.seek(0)
    is_zip = zipfile.is_zipfile(fileobj)
    fileobj.seek(0)
    try:
        if is_zip:
            _extract_zip(fileobj, images, budget)
        else:
            _extract_tar(fileobj, images, budget)
    except tarfile.ReadError as exc:
        if images.images or images.skipped:
            raise ArchiveError(f"archive: {name!r} is corrupt or truncated ({exc})") from exc
        raise ArchiveError(f"archive: {name!r} is not a zip or tar archive (.zip, .tar, .tar.gz, .tgz)") from exc
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ArchiveError(f"archive: {name!r} is corrupt or truncated ({exc})") from exc
