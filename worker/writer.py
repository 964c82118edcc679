"""Write a chunk's outcome: the images' thumbnails, one transaction of bulk row updates, then the job's finalization."""

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from imagebatch.core.renditions import pack_key, pack_renditions
from imagebatch.core.results import RESULT_COLUMNS, stored_result
from imagebatch.core.storage import get_store
from imagebatch.db import lifecycle
from imagebatch.db.lifecycle import ClaimedImage
from imagebatch.db.models import ImageStatus, Job, LabelSet
from imagebatch.db.session import session_scope
from imagebatch.worker.inference import ImageResult
from imagebatch.worker.preprocess import DecodedImage, ImageFailure

logger = logging.getLogger(__name__)


def ok_row(
    image_id: int,
    decoded: DecodedImage,
    result: ImageResult,
    embedding_dtype: str,
    now: datetime,
    renditions: dict | None = None,
) -> dict:
    """The row of a processed image: its outcome, core.results' stored result columns and where its
    renditions lie (store_renditions)."""
    return {
        "id": image_id,
        "status": ImageStatus.OK.value,
        "error_category": None,
        "error_message": None,
        "processed_at": now,
        "renditions": renditions,
        **stored_result(
            width=decoded.width,
            height=decoded.height,
            mode=decoded.mode,
            format=decoded.format,
            mean=decoded.mean,
            std=decoded.std,
            topk=result.topk,
            confidence=result.confidence,
            top5_mean=result.top5_mean,
            margin=result.margin,
            entropy=result.entropy,
            embedding=result.embedding,
            embedding_dtype=embedding_dtype,
            probabilities=result.probabilities,
        ),
    }


def error_row(image_id: int, category: str, message: str, now: datetime) -> dict:
    # Every row carries every column so the whole chunk is a single executemany.
    row: dict = dict.fromkeys(RESULT_COLUMNS)
    row.update(
        id=image_id,
        status=ImageStatus.ERROR.value,
        error_category=category,
        error_message=message[:2000],
        processed_at=now,
        renditions=None,
    )
    return row


def failure_row(image_id: int, failure: ImageFailure, now: datetime) -> dict:
    return error_row(image_id, failure.category, failure.message, now)


def store_renditions(
    job_id: str, start: int, claimed: Sequence[ClaimedImage], decoded: Sequence[DecodedImage | ImageFailure]
) -> dict[int, dict]:
    """Each decoded image's thumbnail (and preview) end to end in the chunk's one pack; {image id: its
    `renditions` reference} for the rows (core/renditions.py).

    Called before the chunk's rows commit, so a row that says ok has its thumbnail; a storage error
    raises, and the chunk is retried like any other. Every call writes a pack of its own: a row names
    the pack its own delivery wrote, whatever other deliveries of the chunk wrote or left.
    """
    key = pack_key(job_id, start, uuid.uuid4().hex[:12])
    made = [
        (image.id, {"thumbnail": outcome.renditions.thumbnail, "preview": outcome.renditions.preview})
        for image, outcome in zip(claimed, decoded, strict=True)
        if isinstance(outcome, DecodedImage) and outcome.renditions is not None
    ]
    pack, refs = pack_renditions(key, made)
    if pack:
        get_store().write_bytes(key, pack)
    return refs


def ensure_label_set(session: Session, weights_name: str, labels: Sequence[str]) -> None:
    """Insert the labels once; concurrent workers racing on the first chunk both succeed."""
    if session.scalar(select(LabelSet.weights).where(LabelSet.weights == weights_name)):
        return
    dialect = session.get_bind().dialect.name
    values = {"weights": weights_name, "labels": list(labels)}
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(insert(LabelSet).values(values).on_conflict_do_nothing())
    else:
        session.add(LabelSet(**values))


def write_chunk(
    session: Session,
    *,
    job_id: str,
    rows: Sequence[dict],
    weights_name: str | None = None,
    labels: Sequence[str] = (),
    reproducibility: dict | None = None,
) -> None:
    """The chunk's rows (one executemany, only rows still running: db.lifecycle), its labels, its record."""
    if weights_name:
        ensure_label_set(session, weights_name, labels)
    lifecycle.write_chunk_results(session=session, rows=rows)
    if reproducibility is not None:
        lifecycle.record_reproducibility(session=session, job_id=job_id, record=reproducibility)


def commit_chunk(
    job_id: str,
    rows: Sequence[dict],
    *,
    weights_name: str,
    labels: Sequence[str],
    reproducibility: dict,
    stored: int = 0,
) -> None:
    """The chunk's transaction, then finalization in its own short one (it must see this commit).

    `stored`: renditions store_renditions wrote for the chunk, removed again if the job was deleted meanwhile.
    """
    with session_scope() as session:
        write_chunk(
            session, job_id=job_id, rows=rows, weights_name=weights_name, labels=labels, reproducibility=reproducibility
        )
    finalize(job_id, stored=stored)


def finalize(job_id: str, *, stored: int = 0) -> None:
    """Close the job if nothing is open. With `stored` renditions written for the chunk, the same short
    transaction also asks whether the job was deleted while the chunk ran: the API cleared its storage
    before those renditions landed there, so clear it again (they were written before this check, so
    none can follow)."""
    with session_scope() as session:
        lifecycle.finalize_job(session=session, job_id=job_id)
        gone = bool(stored) and session.scalar(select(Job.id).where(Job.id == job_id)) is None
    if gone:
        get_store().delete_prefix(f"{job_id}/")


def fail_open_images(job_id: str, start: int, stop: int, message: str) -> int:
    """Give up on a chunk: its images still open become `internal` errors; then finalize."""
    with session_scope() as session:
        count = lifecycle.fail_chunk(session=session, job_id=job_id, start=start, stop=stop, message=message)
    finalize(job_id)
    return count


def release_claim(job_id: str, start: int, stop: int, token: str) -> None:
    """Hand a chunk that raised back as pending, the attempt not counted; best effort."""
    try:
        with session_scope() as session:
            lifecycle.release_claim(session=session, job_id=job_id, start=start, stop=stop, claimed_by=token)
    except Exception as exc:  # the database may be the reason the chunk failed
        logger.warning("job %s: could not release chunk [%d, %d): %s", job_id, start, stop, exc)
