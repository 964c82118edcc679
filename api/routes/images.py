"""One image of a job: its full result (with embedding), its stored bytes and a thumbnail."""

import io
import logging
import mimetypes
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from imagebatch.api.auth import TenantDep
from imagebatch.api.deps import SessionDep, get_job_or_404
from imagebatch.api.schemas import BINARY, content_response, error_responses
from imagebatch.core import netguard
from imagebatch.core.config import settings
from imagebatch.core.results import embedding_dtype
from imagebatch.core.storage import BlobStore, get_store
from imagebatch.db.models import Image
from imagebatch.db.results import result_item

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["images"])

_FORMAT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
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
        return StreamingResponse(_chunks(store, key), media_type=media_type, headers=_CACHE)
    if location.startswith("file:"):
        return FileResponse(_local_path(location), media_type=media_type, headers=_CACHE)
    if location.startswith(("http://", "https://")):
        return RedirectResponse(location, status_code=307)
    raise HTTPException(404, "image location is not servable")


def _chunks(store: BlobStore, key: str, size: int = 256 * 1024) -> Iterator[bytes]:
    with store.open(key) as handle:
        while block := handle.read(size):
            yield block


def _read_bytes(location: str) -> bytes:
    if location.startswith("blob:"):
        return get_store().read_bytes(location.removeprefix("blob:"))
    if location.startswith("file:"):
        with open(_local_path(location), "rb") as handle:
            return handle.read()
    raise HTTPException(404, "remote image: no thumbnail (open its content link instead)")


def make_thumbnail(data: bytes, size: int) -> bytes:
    """A JPEG no larger than size×size, EXIF orientation applied (as the worker sees the image)."""
    with PILImage.open(io.BytesIO(data)) as source:
        source.draft("RGB", (size, size))  # JPEGs decode at reduced scale: much faster for big photos
        picture = ImageOps.exif_transpose(source).convert("RGB")
    picture.thumbnail((size, size))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=82)
    return out.getvalue()


@router.get(
    "/{job_id}/images/{index}/thumbnail",
    response_class=Response,
    responses={200: content_response("A JPEG thumbnail", BINARY, "image/jpeg"), **error_responses(404, 422, 503)},
)
async def get_image_thumbnail(
    job_id: str,
    index: int,
    session: SessionDep,
    tenant: TenantDep,
    size: Annotated[int | None, Query(ge=16, le=1024, description="longest side in pixels")] = None,
) -> Response:
    """A small JPEG of the image for grids (uploads and local files)."""
    await run_in_threadpool(get_job_or_404, session, job_id, tenant)
    image = await run_in_threadpool(get_image_or_404, session, job_id, index)
    location = image.location
    session.close()
    try:
        data = await run_in_threadpool(_read_bytes, location)
        thumb = await run_in_threadpool(make_thumbnail, data, size or settings.THUMBNAIL_SIZE)
    except FileNotFoundError as exc:
        raise HTTPException(404, "image bytes are no longer stored") from exc
    except (UnidentifiedImageError, PILImage.DecompressionBombError, OSError, ValueError) as exc:
        raise HTTPException(404, f"image cannot be decoded: {exc}") from exc
    return Response(thumb, media_type="image/jpeg", headers=_CACHE)
