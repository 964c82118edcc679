"""A labelled image set in a request (training, evaluation): one ImageFolder `archive` with form fields, or
JSON {"uris": [...], "labels": [...]} with options; images go to blob storage, each with its class."""

import json
import tempfile
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from imagebatch.api.bodies import SubmissionError
from imagebatch.api.submission import resolve_uri
from imagebatch.api.uploads import ArchiveError, ImageSink, UploadLimit, extension, extract_archive
from imagebatch.core.config import settings
from imagebatch.core.datasets import FolderLayout, class_name_problem, given_split, image_folder_layout, path_parts
from imagebatch.core.storage import get_store
from imagebatch.db.lifecycle import ImageSource

if TYPE_CHECKING:  # python-multipart defines its callback types for type checkers only
    from python_multipart.multipart import MultipartCallbacks

_MAX_FIELD_BYTES = 64 * 1024


@dataclass
class LabelledSet:
    """The images (each with its class as `label`), the classes found, the option fields, what was skipped."""

    options: dict[str, Any]
    images: list[ImageSource]
    paths: list[str]  # each image's place in an ImageFolder: <class>/<path below its class folder>
    classes: list[str]  # every class folder (an empty one too) or label, sorted
    skipped: list[dict[str, str]] = field(default_factory=list)
    val: "LabelledSet | None" = None  # a given validation set (train/ + val/ archive); then self is train/
    val_folder: str = ""  # how the archive named it: "val" or "validation"

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for image in self.images:
            if image.label is not None:  # every image of a labelled set has one
                counts[image.label] += 1
        return counts


class _Form:
    """python-multipart callbacks: text fields kept (bounded), the one `archive` part spooled to a temp file."""

    def __init__(self, option_fields: tuple[str, ...]) -> None:
        self.option_fields = option_fields
        self.fields: dict[str, str] = {}
        self.archive: IO[bytes] | None = None
        self.archive_name = "archive"
        self._header, self._disposition = [b"", b""], b""
        self._name, self._value = "", bytearray()
        self._sink: IO[bytes] | None = None

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header[0] += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header[1] += data[start:end]

    def on_header_end(self) -> None:
        if self._header[0].strip().lower() == b"content-disposition":
            self._disposition = self._header[1]
        self._header = [b"", b""]

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._disposition)
        self._name, self._value = params.get(b"name", b"").decode("utf-8", "replace"), bytearray()
        if self._name == "archive" and b"filename" in params:
            if self.archive is not None:
                raise SubmissionError(422, "archive: send one archive")
            self.archive_name = params[b"filename"].decode("utf-8", "replace") or "archive"
            self._sink = self.archive = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        elif self._name not in self.option_fields:
            expected = ", ".join(("archive", *self.option_fields))
            raise SubmissionError(422, f"unknown form field {self._name!r}; expected one of {expected}")
        elif self._name in self.fields:
            raise SubmissionError(422, f"{self._name}: given more than once")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > _MAX_FIELD_BYTES:
            raise SubmissionError(422, f"{self._name}: value too long")

    def on_part_end(self) -> None:
        if self._sink is None:
            self.fields[self._name] = bytes(self._value).decode("utf-8", "replace").replace("\x00", "")
        self._sink, self._disposition = None, b""

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


async def _read_form(request: Request, boundary: bytes, option_fields: tuple[str, ...]) -> _Form:
    form = _Form(option_fields)
    parser = MultipartParser(boundary, form.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > settings.MAX_UPLOAD_BYTES:
                raise SubmissionError(413, f"request body is larger than {settings.MAX_UPLOAD_BYTES} bytes")
            await run_in_threadpool(parser.write, chunk)
        await run_in_threadpool(parser.finalize)
    except FormParserError as exc:
        form.close()
        raise SubmissionError(400, f"malformed multipart body: {exc}") from exc
    except BaseException:
        form.close()
        raise
    return form


def _labelled(stored: list[ImageSource], layout: FolderLayout) -> tuple[list[ImageSource], list[ImageSource]]:
    """Each stored image inside one of the layout's class folders, with its class; and the images left over."""
    root = path_parts(layout.root) or ()
    classes = {path: label for path, label in layout.files}
    images, rest = [], []
    for image in stored:
        parts = path_parts(image.source) or ()
        rel = "/".join(parts[len(root) :]) if parts[: len(root)] == root else None
        if rel in classes:
            images.append(ImageSource(source=rel, location=image.location, label=classes[rel]))
        else:
            rest.append(image)
    return images, rest


def _outside(rest: list[ImageSource]) -> list[dict[str, str]]:
    return [{"source": i.source, "reason": "not inside a class folder (ImageFolder layout)"} for i in rest]


def _check_names(*layouts: FolderLayout) -> None:
    for layout in layouts:
        for name in layout.classes:
            if problem := class_name_problem(name):
                raise SubmissionError(422, f"class folder {name!r} {problem}")


def _extract(form: _Form, prefix: str) -> ImageSink:
    """Extract the archive (the uploads' guards: bombs, member limits, unsafe paths) into blob storage."""
    if form.archive is None:
        raise SubmissionError(422, 'archive: send an ImageFolder archive, or JSON {"uris": [...], "labels": [...]}')
    sink = ImageSink(prefix, get_store(), max_images=settings.MAX_IMAGES_PER_JOB)
    try:
        form.archive.seek(0)
        extract_archive(form.archive, form.archive_name, sink)
    except ArchiveError as exc:
        raise SubmissionError(422, str(exc)) from exc
    except UploadLimit as exc:
        raise SubmissionError(413, f"archive {form.archive_name!r}: {exc}") from exc
    return sink


def _from_archive(form: _Form, prefix: str, allow_split: bool) -> LabelledSet:
    """The archive's images, labelled by the ImageFolder rule; with allow_split, train/ + val/ is a given split."""
    sink = _extract(form, prefix)
    folders = [s["source"] for s in sink.skipped if s["reason"] == "directory"]
    skipped = [s for s in sink.skipped if s["reason"] != "directory"]
    names = [i.source for i in sink.images]
    split = given_split(names, lambda _name: True, folders) if allow_split else None
    if split is not None:
        _check_names(split.train, split.val)
        images, rest = _labelled(sink.images, split.train)
        val_images, rest = _labelled(rest, split.val)
        val = LabelledSet({}, val_images, [i.source for i in val_images], split.val.classes)
        paths, skipped = [i.source for i in images], skipped + _outside(rest)
        return LabelledSet(form.fields, images, paths, split.train.classes, skipped, val, split.val_folder)
    layout = image_folder_layout(names, lambda _name: True, folders)
    _check_names(layout)
    images, rest = _labelled(sink.images, layout)
    return LabelledSet(form.fields, images, [i.source for i in images], layout.classes, skipped + _outside(rest))


async def read_labelled_form(
    request: Request, prefix: str, option_fields: tuple[str, ...], allow_split: bool = False
) -> LabelledSet:
    """A multipart body: `archive` plus option fields; uploads land under `prefix`."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    if not params.get(b"boundary"):
        raise SubmissionError(400, "multipart body without a boundary in its Content-Type")
    form = await _read_form(request, params[b"boundary"], option_fields)
    try:
        return await run_in_threadpool(_from_archive, form, prefix, allow_split)
    finally:
        form.close()


def _uri_images(uris: Any, labels: Any) -> LabelledSet:
    if not isinstance(uris, list) or not isinstance(labels, list) or len(uris) != len(labels):
        raise SubmissionError(422, "uris, labels: two lists of the same length (one label per image)")
    if not uris:
        raise SubmissionError(422, "no images: uris is empty")
    if len(uris) > settings.MAX_IMAGES_PER_JOB:
        raise SubmissionError(413, f"uris: {len(uris)} images is over the limit of {settings.MAX_IMAGES_PER_JOB}")
    roots, images, paths = settings.allowed_roots, [], []
    for i, (uri, label) in enumerate(zip(uris, labels, strict=True)):
        problem = "must be a string" if not isinstance(label, str) else class_name_problem(label)
        if problem:
            raise SubmissionError(422, f"labels[{i}]: {label!r} {problem}")
        source = resolve_uri(i, uri, roots)
        images.append(ImageSource(source=source.source, location=source.location, label=label))
        paths.append(f"{label}/{i:06d}{extension(uri.split('?', 1)[0])}")
    return LabelledSet({}, images, paths, sorted(set(labels)))


async def read_labelled_json(request: Request) -> LabelledSet:
    """A JSON body: uris, one label each, and the options beside them."""
    body, limit = bytearray(), settings.MAX_UPLOAD_BYTES
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise SubmissionError(413, f"request body is larger than {limit} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SubmissionError(422, f"body: invalid JSON: {exc}") from exc
    if not isinstance(data, dict) or "uris" not in data or "labels" not in data:
        raise SubmissionError(422, 'body: a JSON object with "uris" and "labels" lists (and options)')
    labelled = await run_in_threadpool(_uri_images, data.pop("uris"), data.pop("labels"))
    labelled.options = data
    return labelled


async def read_labelled(
    request: Request, prefix: str, option_fields: tuple[str, ...], allow_split: bool = False
) -> LabelledSet:
    """The body as a labelled set: multipart (`archive` + fields) or JSON (`uris`, `labels`, options).

    allow_split: an archive of train/ and val/ (or validation/) brings its own validation set (`val`)."""
    content_type, _ = parse_options_header(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.MAX_UPLOAD_BYTES:
        raise SubmissionError(413, f"request body is larger than {settings.MAX_UPLOAD_BYTES} bytes (MAX_UPLOAD_BYTES)")
    if content_type == b"application/json":
        return await read_labelled_json(request)
    if content_type == b"multipart/form-data":
        return await read_labelled_form(request, prefix, option_fields, allow_split)
    raise SubmissionError(
        415, 'send multipart/form-data (`archive`) or application/json {"uris": [...], "labels": [...]}'
    )
