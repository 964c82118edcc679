"""A labelled image set in a request (training, evaluation): one ImageFolder `archive` with form fields, or
JSON {"uris": [...], "labels": [...]} with options; images go to blob storage, each with its class."""

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from imagebatch.api.bodies import SubmissionError, body_chunks, too_big
from imagebatch.api.multipart import FormReader, read_form
from imagebatch.api.submission import resolve_uri
from imagebatch.api.uploads import ArchiveError, ImageSink, UploadLimit, extension, extract_archive
from imagebatch.core.config import settings
from imagebatch.core.datasets import FolderLayout, class_name_problem, given_split, image_folder_layout, path_parts
from imagebatch.core.storage import get_store
from imagebatch.db.lifecycle import ImageSource


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


def _extract(form: FormReader, prefix: str) -> ImageSink:
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


def _from_archive(form: FormReader, prefix: str, allow_split: bool) -> LabelledSet:
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
    form = FormReader(option_fields, per="request")
    try:
        await read_form(request, params[b"boundary"], form)
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
    try:
        data = json.loads(b"".join([chunk async for chunk in body_chunks(request)]))
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
        raise SubmissionError(413, too_big(settings.MAX_UPLOAD_BYTES))
    if content_type == b"application/json":
        return await read_labelled_json(request)
    if content_type == b"multipart/form-data":
        return await read_labelled_form(request, prefix, option_fields, allow_split)
    raise SubmissionError(
        415, 'send multipart/form-data (`archive`) or application/json {"uris": [...], "labels": [...]}'
    )
