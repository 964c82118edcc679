"""Turn a POST /v1/jobs body (files, an archive or a URI list) into options and stored image sources."""

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi import Request
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from imagebatch.api.bodies import Submission, SubmissionError, body_chunks, parse_options, too_big
from imagebatch.api.multipart import read_multipart
from imagebatch.api.uploads import ImageSink
from imagebatch.core.config import settings
from imagebatch.core.netguard import BlockedAddress, InvalidUrl, check_host_name, parse_http_url, within_roots
from imagebatch.core.storage import get_store
from imagebatch.db.lifecycle import ImageSource


def _allowed_path(where: str, entry: str, path: str, roots: list[Path]) -> str:
    if not roots:
        raise SubmissionError(
            422, f"{where}: local paths are disabled (no allowed roots configured; set IMAGEBATCH_ALLOWED_ROOTS)"
        )
    if not os.path.isabs(path):
        raise SubmissionError(422, f"{where}: local paths must be absolute (got {entry!r})")
    # realpath, so neither symlinks nor '..' can lead outside an allowed root.
    try:
        return within_roots(path, roots)
    except BlockedAddress:
        allowed = ", ".join(str(root) for root in roots)
        raise SubmissionError(422, f"{where}: {entry!r} is outside the allowed roots ({allowed})") from None


def resolve_uri(i: int, entry: Any, roots: list[Path]) -> ImageSource:
    """One manifest entry -> where the worker reads it; 422 naming the entry if not allowed."""
    where = f"uris[{i}]"
    if not isinstance(entry, str) or not entry.strip() or "\x00" in entry:
        raise SubmissionError(422, f"{where}: must be a non-empty path or URL string")
    try:
        parsed = urlsplit(entry)
    except ValueError as exc:
        raise SubmissionError(422, f"{where}: {entry!r} is not a valid URL ({exc})") from exc
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        try:
            url = parse_http_url(entry)  # as the worker will, to download it: what it could not is refused now
        except InvalidUrl as exc:
            raise SubmissionError(422, f"{where}: URL {entry!r} {exc}") from exc
        _check_url_host(where, entry, url.host)
        return ImageSource(source=entry, location=entry)
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise SubmissionError(422, f"{where}: file URI {entry!r} names another host")
        path = unquote(parsed.path)
    elif scheme == "":
        path = entry
    else:
        raise SubmissionError(
            422,
            f"{where}: unsupported scheme {scheme!r} in {entry!r}; use an absolute path, file://, http:// or https://",
        )
    return ImageSource(source=entry, location=f"file:{_allowed_path(where, entry, path, roots)}")


def _check_url_host(where: str, entry: str, host: str) -> None:
    # Only what the spelling gives away; the worker checks resolved addresses on every hop.
    try:
        check_host_name(host, allow_private=settings.ALLOW_PRIVATE_URLS)
    except BlockedAddress as exc:
        raise SubmissionError(422, f"{where}: {entry!r} is not allowed: {exc} (IMAGEBATCH_ALLOW_PRIVATE_URLS)") from exc


async def _body_within_limit(request: Request) -> bytes:
    return b"".join([chunk async for chunk in body_chunks(request)])


async def _read_json(request: Request) -> Submission:
    try:
        body = json.loads(await _body_within_limit(request))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SubmissionError(422, f"body: invalid JSON: {exc}") from exc
    if not isinstance(body, dict) or "uris" not in body:
        raise SubmissionError(422, 'uris: the JSON body must be an object with a "uris" list')
    uris = body.pop("uris")
    options = parse_options(body)
    if not isinstance(uris, list):
        raise SubmissionError(422, "uris: must be a list of paths or URLs")
    if not uris:
        raise SubmissionError(422, "no images: uris is empty")
    if len(uris) > settings.MAX_IMAGES_PER_JOB:
        raise SubmissionError(
            413,
            f"uris: {len(uris)} images in one job is over the limit of "
            f"{settings.MAX_IMAGES_PER_JOB} (MAX_IMAGES_PER_JOB)",
        )
    roots = settings.allowed_roots
    images = await run_in_threadpool(lambda: [resolve_uri(i, u, roots) for i, u in enumerate(uris)])
    return Submission(options, images)


async def read_submission(request: Request, job_id: str) -> Submission:
    """Parse and validate the body; uploads land under '<job_id>/' and are removed on any error."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.MAX_UPLOAD_BYTES:
        raise SubmissionError(413, too_big(settings.MAX_UPLOAD_BYTES))
    if content_type == b"application/json":
        return await _read_json(request)
    if content_type != b"multipart/form-data":
        raise SubmissionError(
            415, 'send multipart/form-data (`files` or `archive`) or application/json {"uris": [...]}'
        )
    if not params.get(b"boundary"):
        raise SubmissionError(400, "multipart body without a boundary in its Content-Type")
    store = get_store()
    try:
        sink = ImageSink(job_id, store, max_images=settings.MAX_IMAGES_PER_JOB)
        return await read_multipart(request, sink, params[b"boundary"])
    except Exception:
        await run_in_threadpool(store.delete_prefix, f"{job_id}/")
        raise
    except BaseException:
        # Cancelled (client went away): nothing can be awaited any more, so clean up inline.
        store.delete_prefix(f"{job_id}/")
        raise
