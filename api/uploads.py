"""Stream uploaded images and archive members to blob storage, numbered in arrival order."""

import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import IO

from db.jobs import ImageSource
from imagebatch.storage import BlobStore

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".dib", ".webp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".tga",
})
# Errors that mean one archive member cannot be read; anything else (e.g. a full disk) is ours.
_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, tarfile.TarError,
                  RuntimeError, NotImplementedError)


class ArchiveError(ValueError):
    """The archive as a whole cannot be read (not an archive, corrupt, truncated)."""


def extension(name: str) -> str:
    match = re.search(r"\.[A-Za-z0-9]{1,10}$", re.split(r"[\\/]", name)[-1])
    return match.group(0).lower() if match else ""


class ImageSink:
    """Numbers images in arrival order and streams each one to '<job_id>/<idx:06d><ext>'."""

    def __init__(self, job_id: str, store: BlobStore) -> None:
        self.job_id, self.store = job_id, store
        self.images: list[ImageSource] = []
        self.skipped: list[dict[str, str]] = []

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append({"source": source, "reason": reason})

    def add(self, source: str, stream: IO[bytes]) -> None:
        key = f"{self.job_id}/{len(self.images):06d}{extension(source)}"
        self.store.write_stream(key, stream)
        self.images.append(ImageSource(source=source, location=f"blob:{key}"))

    def add_member(self, source: str, open_member: Callable[[], AbstractContextManager[IO[bytes]]]) -> None:
        """Like add, but an unreadable archive member is skipped rather than fatal."""
        key = f"{self.job_id}/{len(self.images):06d}{extension(source)}"
        try:
            with open_member() as stream:
                self.store.write_stream(key, stream)
        except _MEMBER_ERRORS as exc:
            self.store.delete_prefix(key)
            self.skip(source, f"unreadable archive member: {exc}")
            return
        self.images.append(ImageSource(source=source, location=f"blob:{key}"))


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
    if extension(name) not in IMAGE_EXTENSIONS:
        return "not an image (by extension)"
    return None


def _extract_zip(fileobj: IO[bytes], images: ImageSink) -> None:
    with zipfile.ZipFile(fileobj) as archive:
        for info in archive.infolist():
            name = info.filename.replace("\x00", "")
            is_link = stat.S_ISLNK(info.external_attr >> 16)
            reason = member_problem(name, is_dir=info.is_dir(), is_file=not is_link)
            if reason:
                images.skip(name, reason)
            else:
                images.add_member(name, lambda info=info: archive.open(info))


def _extract_tar(fileobj: IO[bytes], images: ImageSink) -> None:
    with tarfile.open(fileobj=fileobj, mode="r:*") as archive:
        for member in archive:
            name = member.name.replace("\x00", "")
            reason = member_problem(name, is_dir=member.isdir(), is_file=member.isfile())
            if reason:
                images.skip(name, reason)
            else:
                images.add_member(name, lambda member=member: archive.extractfile(member))


def extract_archive(fileobj: IO[bytes], name: str, images: ImageSink) -> None:
    """Stream every image member of a zip or tar(.gz) to storage, one at a time."""
    fileobj.seek(0)
    is_zip = zipfile.is_zipfile(fileobj)
    fileobj.seek(0)
    try:
        if is_zip:
            _extract_zip(fileobj, images)
        else:
            _extract_tar(fileobj, images)
    except tarfile.ReadError as exc:
        if images.images or images.skipped:
            raise ArchiveError(f"archive: {name!r} is corrupt or truncated ({exc})") from exc
        raise ArchiveError(f"archive: {name!r} is not a zip or tar archive (.zip, .tar, .tar.gz, .tgz)") from exc
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ArchiveError(f"archive: {name!r} is corrupt or truncated ({exc})") from exc
