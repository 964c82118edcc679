"""Multipart bodies parsed as they stream: a job's `files` parts stored as each ends, one `archive` spooled."""

import re
import tempfile
from typing import IO, TYPE_CHECKING

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from imagebatch.api.bodies import Submission, SubmissionError, body_chunks, parse_options
from imagebatch.api.uploads import ArchiveError, ImageSink, UploadLimit, extract_archive
from imagebatch.core.config import settings
from imagebatch.core.options import JobOptions

if TYPE_CHECKING:  # python-multipart defines its callback types for type checkers only
    from python_multipart.multipart import MultipartCallbacks

# A job's multipart parts: the images, then one text field per option (each at most once).
IMAGE_FIELDS = ("files", "archive")
OPTION_FIELDS = tuple(JobOptions.model_fields)
_MAX_FIELD_BYTES = 64 * 1024
# A file part stays in memory up to this size, then rolls over to disk; only one is open at once.
_SPOOL_BYTES = 1024 * 1024
_PARSER_HEADER_BYTES = 4 * 1024 * 1024
_FIELD_NAME = re.compile(rb'(?:^|;)\s*name="([^"]*)"')
_FILE_NAME = re.compile(rb'filename="([^"]*)')


def header_limit() -> int:
    """Bytes a part's header value may take: a file name of MAX_FILENAME_LENGTH characters of up
    to 4 UTF-8 bytes each, with room for the rest of its Content-Disposition."""
    return 4 * settings.MAX_FILENAME_LENGTH + 512


def _shown(name: str) -> str:
    return name if len(name) <= 40 else name[:40] + "…"


def name_too_long(field: str, name: str) -> SubmissionError:
    """400 naming the field and the start of the file name."""
    limit = settings.MAX_FILENAME_LENGTH
    return SubmissionError(
        400,
        f"{field}: file name {_shown(name)!r} is longer than {limit} characters "
        "(IMAGEBATCH_MAX_FILENAME_LENGTH); rename the file",
    )


def _text(raw: bytes) -> str:
    # Browsers send UTF-8 names; anything else still yields a usable (if odd) name.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\x00", "")


class FormReader:
    """python-multipart callbacks for a form of option fields (each once, bounded) and file parts: with
    `images` (a job), `files` parts go to the blob store as soon as each ends; one `archive` is spooled
    to a temp file for whoever reads it after the body (a job, a training set, an evaluation set)."""

    def __init__(self, option_fields: tuple[str, ...], images: ImageSink | None = None, per: str = "job") -> None:
        self.option_fields, self.images, self.per = option_fields, images, per
        self.file_fields = IMAGE_FIELDS if images is not None else ("archive",)
        self.fields: dict[str, str] = {}
        self.archive: IO[bytes] | None = None
        self.archive_name = ""
        self._header = [b"", b""]
        self._disposition = b""
        self._name = ""
        self._filename: str | None = None
        self._sink: IO[bytes] | None = None
        self._size = 0
        self._value = bytearray()

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self._disposition, self._name, self._filename = b"", "", None
        self._size, self._value = 0, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header[0] += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header[1] += data[start:end]
        if len(self._header[1]) > header_limit():
            # Our limit before python-multipart's ("Maximum header size exceeded"), so the answer says why.
            field, value = self._header
            if field.strip().lower() == b"content-disposition" and (name := _FILE_NAME.search(value)):
                part = _FIELD_NAME.search(value)
                raise name_too_long(_text(part.group(1)) if part else "files", _text(name.group(1)))
            raise SubmissionError(
                400, f"a multipart part's {_text(field)[:40]!r} header is over {header_limit()} bytes"
            )

    def on_header_end(self) -> None:
        if self._header[0].strip().lower() == b"content-disposition":
            self._disposition = self._header[1]
        self._header = [b"", b""]

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._disposition)
        if b"name" not in params:
            raise SubmissionError(400, "a multipart part has no name in its Content-Disposition")
        self._name = _text(params[b"name"])
        self._filename = _text(params[b"filename"]) if b"filename" in params else None
        if self._filename is not None and len(self._filename) > settings.MAX_FILENAME_LENGTH:
            raise name_too_long(self._name, self._filename)
        if self._name in self.file_fields:
            if self._name == "archive" and self.archive is not None:
                raise SubmissionError(422, f"archive: send one archive per {self.per}")
            # An archive must be seekable as a whole, so it always goes to a real temp file.
            if self._filename is not None:
                # Open across parser callbacks: closed in on_part_end, or by close() on any error.
                self._sink = (
                    tempfile.TemporaryFile()  # noqa: SIM115
                    if self._name == "archive"
                    else tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
                )
        elif self._name in self.option_fields:
            if self._name in self.fields:
                raise SubmissionError(422, f"{self._name}: given more than once")
        else:
            expected = ", ".join(self.file_fields + self.option_fields)
            raise SubmissionError(422, f"unknown form field {self._name!r}; expected one of {expected}")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(data[start:end])
            self._size += end - start
            return
        self._value += data[start:end]
        if len(self._value) > _MAX_FIELD_BYTES:
            raise SubmissionError(422, f"{self._name}: value too long")

    def on_part_end(self) -> None:
        sink, self._sink = self._sink, None
        if self._name in self.option_fields:
            self.fields[self._name] = _text(bytes(self._value))
        elif sink is None:
            # Some clients send an unchosen file input as an empty text field: ignore only that.
            if self._value.strip():
                raise SubmissionError(422, f"{self._name}: must be a file upload, not a text field")
        elif not self._filename and not self._size:
            sink.close()  # a browser form with no file chosen still sends an empty, unnamed part
        elif self._name == "archive":
            self.archive, self.archive_name = sink, self._filename or "archive"
        else:
            self._add_file(sink)

    def _add_file(self, sink: IO[bytes]) -> None:
        try:
            if self.images is not None:  # always: `files` is a file field only with an image sink
                sink.seek(0)
                self.images.add(self._filename or f"upload-{len(self.images.images)}", sink)
        finally:
            sink.close()

    def close(self) -> None:
        for handle in (self._sink, self.archive):
            if handle is not None:
                handle.close()


async def read_form(request: Request, boundary: bytes, reader: FormReader) -> None:
    """Stream the body through the reader, within MAX_UPLOAD_BYTES and UPLOAD_IDLE_TIMEOUT; the caller
    closes the reader (its spooled archive is read after this returns)."""
    # python-multipart counts header bytes as it scans a chunk, before our callbacks see them; its
    # far larger limit leaves the check (with a message naming the file name) to on_header_value.
    parser = MultipartParser(boundary, reader.callbacks(), max_header_size=_PARSER_HEADER_BYTES)
    try:
        async for chunk in body_chunks(request):
            # The callbacks write temp files and blobs: blocking work, kept off the event loop.
            await run_in_threadpool(parser.write, chunk)
        await run_in_threadpool(parser.finalize)
    except FormParserError as exc:
        raise SubmissionError(400, f"malformed multipart body: {exc}") from exc
    except UploadLimit as exc:
        raise SubmissionError(413, str(exc)) from exc


def _submission(reader: FormReader, images: ImageSink) -> Submission:
    """A job's options and images: the `files` parts, or the archive's images (not both)."""
    options = parse_options(reader.fields)
    if reader.archive is not None:
        if images.images:
            raise SubmissionError(422, "send either `files` parts or one `archive`, not both")
        try:
            extract_archive(reader.archive, reader.archive_name, images)
        except ArchiveError as exc:
            raise SubmissionError(422, str(exc)) from exc
        except UploadLimit as exc:
            raise SubmissionError(413, f"archive {reader.archive_name!r}: {exc}") from exc
        if not images.images:
            raise SubmissionError(
                422,
                f"archive {reader.archive_name!r} contains no images "
                f"({len(images.skipped)} member(s) skipped: not images or unsafe paths)",
            )
    if not images.images:
        raise SubmissionError(422, 'no images: send `files` parts, one `archive`, or JSON {"uris": [...]}')
    return Submission(options, images.images, images.skipped, images.digests)


async def read_multipart(request: Request, images: ImageSink, boundary: bytes) -> Submission:
    """A job's multipart body: `files` parts or one `archive`, and the JobOptions fields."""
    reader = FormReader(OPTION_FIELDS, images)
    try:
        await read_form(request, boundary, reader)
        return await run_in_threadpool(_submission, reader, images)
    finally:
        reader.close()
