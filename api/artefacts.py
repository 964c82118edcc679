"""Answer for an artefact a worker builds on request: 202 while pending (sending its task), the file once ready."""

import logging
from datetime import timedelta
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from imagebatch.api.enqueue import celery_app
from imagebatch.core import artefacts
from imagebatch.core.queueing import BUILD_ARTEFACT_TASK, queue_for_model
from imagebatch.core.storage import get_store
from imagebatch.db import lifecycle
from imagebatch.db.models import Artefact, utcnow

logger = logging.getLogger(__name__)

# The API sends build tasks ahead of every chunk: someone is waiting for the answer.
_PRIORITY = 0
_READ_SIZE = 1024 * 1024

PENDING_RESPONSE: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "A worker is building it: ask again at Location after Retry-After seconds",
        "headers": {
            "Location": {"schema": {"type": "string"}, "description": "this same URL"},
            "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"},
        },
    }
}


def _send(row: Artefact) -> None:
    try:
        queue = queue_for_model(row.base_model)
        celery_app().send_task(BUILD_ARTEFACT_TASK, args=[row.id], queue=queue, priority=_PRIORITY)
    except Exception as exc:
        logger.error("artefact %d: could not send its build task: %s", row.id, exc)
        raise HTTPException(503, f"broker unavailable, the build could not be queued: {exc}") from exc
    logger.info("artefact %d: build task sent to %s", row.id, queue_for_model(row.base_model))


def _pending(request: Request, row: Artefact) -> JSONResponse:
    location = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    body = {
        "state": row.state,
        "kind": row.kind,
        "format": row.format,
        "model": row.model,
        "detail": f"a worker serving {row.base_model} is building it; ask again in {artefacts.RETRY_AFTER_SECONDS} s",
    }
    headers = {"Location": location, "Retry-After": str(artefacts.RETRY_AFTER_SECONDS)}
    return JSONResponse(body, status_code=202, headers=headers)


def _file(row: Artefact, headers: dict[str, str]) -> Response:
    key = row.storage_key or ""
    if not get_store().exists(key):
        raise HTTPException(409, f"the built {row.kind} file is no longer stored ({key})")
    headers = {**headers, "Content-Length": str(row.size_bytes)} if row.size_bytes is not None else headers
    if row.weights_sha256:
        headers["X-Weights-SHA256"] = row.weights_sha256
    return StreamingResponse(
        get_store().iter_blocks(key, _READ_SIZE), media_type=artefacts.MEDIA_TYPES[row.format], headers=headers
    )


def serve_artefact(
    session: Session, request: Request, *, cache_key: str, values: dict[str, Any], headers: dict[str, str]
) -> Response:
    """The artefact of `cache_key` (made pending from `values` on first request): its file with `headers`
    once ready, 409 with the reason once failed (built again when asked after RETRY_FAILED_AFTER_SECONDS),
    else 202 after sending its build task if nobody did lately."""
    row = lifecycle.request_artefact(session=session, cache_key=cache_key, **values)
    session.commit()
    if row.state == artefacts.READY:
        response = _file(row, headers)
        session.close()  # the file streams from storage: no connection held meanwhile
        return response
    if row.state == artefacts.FAILED:
        failed_before = utcnow() - timedelta(seconds=artefacts.RETRY_FAILED_AFTER_SECONDS)
        if not lifecycle.retry_failed(session=session, artefact_id=row.id, failed_before=failed_before):
            raise HTTPException(409, f"the {row.kind} could not be built: {row.error}")
        session.commit()
    stale = utcnow() - timedelta(seconds=artefacts.RESEND_AFTER_SECONDS)
    if lifecycle.mark_sent(session=session, artefact_id=row.id, unsent_since=stale):
        session.commit()
        _send(row)
    return _pending(request, row)
