"""One image of a job: its full result (with embedding), its stored bytes, and the thumbnail and preview
the worker stored. The API streams bytes; it never decodes an image."""

import logging
import mimetypes
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from imagebatch.api.auth import TenantDep
from imagebatch.api.deps import SessionDep, get_job_or_404
from imagebatch.api.schemas import BINARY, content_response, error_responses
from imagebatch.core import errors, netguard, renditions
from imagebatch.core.config import settings
from imagebatch.core.results import embedding_dtype
from imagebatch.core.storage import get_store
from imagebatch.db.models import Image, ImageStatus
from imagebatch.db.results import result_item

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["images"])

_FORMAT_TYPES = {**renditions.BROWSER_FORMATS, "TIFF": "image/tiff"}
_MEDIA_TYPES = (*_FORMAT_TYPES.values(), "application/octet-stream")
# Per job and index the bytes never change, so browsers may keep them (private: keys differ).
# Uploaded bytes are untrusted: never sniffed, never run as a document on the API's origin.
_CACHE = {
    "Cache-Control": "private, max-age=86400",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


def get_image_or_404(session: Session, job_id: str, index: int) -> Image:
    # Past the INTEGER column's range the database raises (a 500) instead of finding nothing.
    in_range = 0 <= index < 2**31
    image = session.scalar(select(Image).where(Image.job_id == job_id, Image.idx == index)) if in_range else None
    if image is None:
        raise HTTPException(404, f"Image {index} not found in job {job_id}")
    return image


def _media_type(image: Image) -> str:
    """A raster image type or octet-stream: a file named .html or .svg must not render as such."""
    guessed = mimetypes.guess_type(image.source)[0] or ""
    if image.format in _FORMAT_TYPES:
        return _FORMAT_TYPES[image.format]
    return guessed if guessed in _FORMAT_TYPES.values() else "application/octet-stream"


def _local_path(location: str) -> str:
    """The file behind a file: location, re-checked against today's allowed roots."""
    try:
        return netguard.within_roots(location.removeprefix("file:"), settings.allowed_roots)
    except netguard.BlockedAddress as exc:
        raise HTTPException(404, f"image file no longer readable: {exc}") from exc


@router.get("/{job_id}/images/{index}", responses=error_responses(404, 422, 503))
def get_image(job_id: str, index: int, session: SessionDep, tenant: TenantDep) -> dict[str, Any]:
    """One image's full result, its embedding included, with links to its bytes and neighbours."""
    job = get_job_or_404(session, job_id, tenant)
    image = get_image_or_404(session, job_id, index)
    item = result_item(image, embedding_dtype=embedding_dtype(job.reproducibility), include=("embedding",))
    base = f"/v1/jobs/{job_id}/images/{index}"
    item["job_id"], item["model"] = job_id, job.custom_model or job.model
    item["links"] = {
        "self": base,
        "content": f"{base}/content",
        "thumbnail": f"{base}/thumbnail",
        "preview": f"{base}/preview",
        "similar": f"{base}/similar",
    }
    return item


@router.get(
    "/{job_id}/images/{index}/content",
    response_class=Response,
    responses={
        200: content_response("The image as submitted", BINARY, *_MEDIA_TYPES),
        307: {"description": "remote image: its URL"},
        **error_responses(404, 422, 503),
    },
)
def get_image_content(job_id: str, index: int, session: SessionDep, tenant: TenantDep) -> Response:
    """The image's bytes as submitted (uploads and local files); http(s) images redirect to their URL."""
    get_job_or_404(session, job_id, tenant)
    image = get_image_or_404(session, job_id, index)
    location, media_type = image.location, _media_type(image)
    session.close()
    if location.startswith("blob:"):
        key = location.removeprefix("blob:")
        store = get_store()
        if not store.exists(key):
            raise HTTPException(404, "image bytes are no longer stored")
        return StreamingResponse(store.iter_blocks(key), media_type=media_type, headers=_CACHE)
    if location.startswith("file:"):
        return FileResponse(_local_path(location), media_type=media_type, headers=_CACHE)
    if location.startswith(("http://", "https://")):
        return RedirectResponse(location, status_code=307)
    raise HTTPException(404, "image location is not servable")


def _stored(image: Image, what: str) -> Response:
    """A rendition the worker stored for an image it decoded (`what`: thumbnail or preview), or 404 saying why
    there is none: a range of the chunk's pack, or the object of its own an image processed before packs has."""
    if image.status != ImageStatus.OK.value:
        failed = image.status == ImageStatus.ERROR.value
        reason = f"the image failed ({image.error_category})" if failed else f"the image is {image.status}"
        raise HTTPException(404, f"no {what}: {reason}")
    store = get_store()
    span = renditions.rendition_span(image.renditions, what)
    if span is not None:
        try:
            data = store.read_range(*span)
        except FileNotFoundError:
            raise HTTPException(404, f"no {what}: its stored pack is gone") from None
        return Response(data, media_type=renditions.MEDIA_TYPE, headers=_CACHE)
    if image.renditions is None:  # processed before packs: an object of its own, if any
        make_key = renditions.thumbnail_key if what == "thumbnail" else renditions.preview_key
        key = make_key(image.job_id, image.idx)
        if store.exists(key):
            return StreamingResponse(store.iter_blocks(key), media_type=renditions.MEDIA_TYPE, headers=_CACHE)
    raise HTTPException(404, f"no {what} stored (jobs processed before thumbnails were stored have none)")


@router.get(
    "/{job_id}/images/{index}/thumbnail",
    response_class=Response,
    responses={
        200: content_response("A JPEG thumbnail", BINARY, renditions.MEDIA_TYPE),
        **error_responses(404, 422, 503),
    },
)
def get_image_thumbnail(job_id: str, index: int, session: SessionDep, tenant: TenantDep) -> Response:
    """The JPEG thumbnail the worker stored when it decoded the image (longest side IMAGEBATCH_THUMBNAIL_SIZE)."""
    get_job_or_404(session, job_id, tenant)
    image = get_image_or_404(session, job_id, index)
    session.close()
    return _stored(image, "thumbnail")


@router.get(
    "/{job_id}/images/{index}/preview",
    response_class=Response,
    responses={
        200: content_response("A JPEG preview of an image browsers cannot show", BINARY, renditions.MEDIA_TYPE),
        307: {"description": "the original is in a format browsers show: its content link"},
        **error_responses(404, 422, 503),
    },
)
def get_image_preview(job_id: str, index: int, session: SessionDep, tenant: TenantDep) -> Response:
    """A picture a browser can show: the stored preview (TIFF, ...), else a redirect to the original."""
    get_job_or_404(session, job_id, tenant)
    image = get_image_or_404(session, job_id, index)
    session.close()
    if renditions.needs_preview(image.format) and image.status == ImageStatus.OK.value:
        return _stored(image, "preview")
    if image.error_category == errors.TOO_LARGE:  # not handed to browsers either
        raise HTTPException(404, "no preview: the image is over the pixel limit (too_large)")
    if _media_type(image) in renditions.BROWSER_MEDIA_TYPES:
        return RedirectResponse(f"/v1/jobs/{job_id}/images/{index}/content", status_code=307)
    raise HTTPException(
        404, f"no preview: {image.format or 'this'} format is not one browsers show, and no preview was made"
    )
