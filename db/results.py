"""Read-side queries for the API: job pages, filtered results, keyset cursors, CSV rows (job views: db.views)."""

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, defer

from imagebatch.db.models import OPEN_IMAGE_STATUSES, Image, ImageStatus, Job, LabelSet, as_utc
from imagebatch.db.session import session_scope

# What `?status=` accepts; "pending" means not yet finished, as in the job's counts.
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "ok": (ImageStatus.OK.value,),
    "error": (ImageStatus.ERROR.value,),
    "pending": OPEN_IMAGE_STATUSES,
    "running": (ImageStatus.RUNNING.value,),
    "cancelled": (ImageStatus.CANCELLED.value,),
}
INCLUDABLE = ("embedding", "probabilities")
# numpy dtypes of the stored (little-endian) vectors, by the name a job's record gives.
# Stored embeddings: the EMBEDDING_DTYPE setting -> little-endian numpy dtype of the raw bytes.
EMBEDDING_DTYPES = {"float32": "<f4", "float16": "<f2"}

CSV_BASE_COLUMNS = [
    "index", "source", "status", "error_category", "error_message", "width", "height", "mode",
    "format", "mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "confidence", "top5_mean", "margin", "entropy",
]


class InvalidCursor(ValueError):
    """A cursor that this API did not hand out (or that was altered)."""


def encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeError) as exc:
        raise InvalidCursor("cursor: not a cursor returned by this API") from exc
    if not isinstance(payload, dict):
        raise InvalidCursor("cursor: not a cursor returned by this API")
    return payload


def list_jobs(
    session: Session, *, state: str | None, limit: int, cursor: str | None, tenant: str | None = None
) -> tuple[list[Job], str | None]:
    """Newest first, keyset-paginated on (created_at, id) so new jobs never shift a page."""
    query = select(Job).options(defer(Job.reproducibility), defer(Job.skipped))
    if tenant is not None:
        query = query.where(Job.tenant == tenant)
    if state:
        query = query.where(Job.state == state)
    if cursor:
        after = decode_cursor(cursor)
        try:
            created = datetime.fromisoformat(after["c"])
            last_id = str(after["i"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidCursor("cursor: not a cursor returned by this API") from exc
        query = query.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < last_id))
        )
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    jobs = list(session.scalars(query))
    if len(jobs) <= limit:
        return jobs, None
    jobs = jobs[:limit]
    tail = jobs[-1]
    return jobs, encode_cursor({"c": as_utc(tail.created_at).isoformat(), "i": tail.id})


@dataclass(frozen=True)
class ResultFilters:
    label: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    max_entropy: float | None = None
    status: str | None = None
    errors_only: bool = False

    def clauses(self) -> list[Any]:
        where = []
        if self.label is not None:
            where.append(Image.top1_label == self.label)
        if self.min_confidence is not None:
            where.append(Image.confidence >= self.min_confidence)
        if self.max_confidence is not None:
            where.append(Image.confidence <= self.max_confidence)
        if self.max_entropy is not None:
            where.append(Image.entropy <= self.max_entropy)
        if self.status is not None:
            where.append(Image.status.in_(STATUS_FILTERS[self.status]))
        if self.errors_only:
            where.append(Image.status == ImageStatus.ERROR.value)
        return where


def _after_index(cursor: str | None) -> int:
    if not cursor:
        return -1
    after = decode_cursor(cursor).get("after")
    if not isinstance(after, int):
        raise InvalidCursor("cursor: not a cursor returned by this API")
    return after


def result_page(
    session: Session,
    *,
    job_id: str,
    filters: ResultFilters,
    limit: int,
    cursor: str | None,
    include: Iterable[str] = (),
) -> tuple[list[Image], str | None]:
    """One page of a job's images in index order; keyset on idx, so rows written meanwhile
    never cause an image to be skipped or repeated."""
    include = set(include)
    heavy = [defer(getattr(Image, name)) for name in INCLUDABLE if name not in include]
    query = (
        select(Image)
        .options(*heavy)
        .where(Image.job_id == job_id, Image.idx > _after_index(cursor), *filters.clauses())
        .order_by(Image.idx)
        .limit(limit + 1)
    )
    images = list(session.scalars(query))
    if len(images) <= limit:
        return images, None
    images = images[:limit]
    return images, encode_cursor({"after": images[-1].idx})


def iter_results(
    job_id: str, filters: ResultFilters, *, page_size: int = 500, include: Iterable[str] = ()
) -> Iterator[Image]:
    """Every matching image, a page (and a short transaction) at a time; for streaming exports."""
    cursor = None
    while True:
        with session_scope() as session:
            images, cursor = result_page(
                session, job_id=job_id, filters=filters, limit=page_size, cursor=cursor, include=include
            )
        yield from images
        if cursor is None:
            return


def embedding_dtype(reproducibility: dict | None) -> str:
    """numpy dtype of a job's stored embeddings, from its reproducibility record (float32 unless it says)."""
    return EMBEDDING_DTYPES.get((reproducibility or {}).get("embedding_dtype", "float32"), "<f4")


def decode_vector(raw: bytes | None, dtype: str = "<f4") -> list[float] | None:
    """Raw little-endian bytes as written by the worker -> a list of Python floats."""
    if raw is None:
        return None
    return np.frombuffer(raw, dtype=dtype).astype(np.float64).tolist()


def _triple(a: float | None, b: float | None, c: float | None) -> list[float] | None:
    return None if a is None else [a, b, c]


def result_item(image: Image, *, embedding_dtype: str, include: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON shape of one image's result; heavy vectors only when asked for.

    `embedding_dtype` is the job's, as embedding_dtype() reads it from the job's record.
    """
    item: dict[str, Any] = {
        "index": image.idx,
        "source": image.source,
        "status": image.status,
        "error": None
        if image.error_category is None and image.error_message is None
        else {"category": image.error_category, "message": image.error_message},
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "format": image.format,
        "channel_mean": _triple(image.mean_r, image.mean_g, image.mean_b),
        "channel_std": _triple(image.std_r, image.std_g, image.std_b),
        "top_k": image.topk,
        "top1_label": image.top1_label,
        "confidence": image.confidence,
        "top5_mean": image.top5_mean,
        "margin": image.margin,
        "entropy": image.entropy,
        "processed_at": as_utc(image.processed_at),
    }
    include = set(include)
    if "embedding" in include:
        item["embedding"] = decode_vector(image.embedding, embedding_dtype)
    if "probabilities" in include:
        item["probabilities"] = decode_vector(image.probabilities)
    return item


def label_set(session: Session, weights: str) -> list[str] | None:
    return session.scalar(select(LabelSet.labels).where(LabelSet.weights == weights))


def probability_columns(labels: Sequence[str]) -> list[str]:
    """"p_<label>", with the class index appended to every label that occurs more than once."""
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return [f"p_{label}_{i}" if seen[label] > 1 else f"p_{label}" for i, label in enumerate(labels)]


def csv_header(top_k: int, probability_names: Sequence[str] | None = None) -> list[str]:
    columns = list(CSV_BASE_COLUMNS)
    for i in range(1, top_k + 1):
        columns += [f"top{i}_label", f"top{i}_index", f"top{i}_probability"]
    return columns + list(probability_names or ())


def csv_row(image: Image, top_k: int, *, probability_count: int = 0) -> list[Any]:
    """One CSV line's values, in csv_header order; None becomes an empty cell.

    probability_count > 0 appends that many probability cells (empty for unprocessed images).
    """
    row: list[Any] = [
        image.idx, image.source, image.status, image.error_category, image.error_message,
        image.width, image.height, image.mode, image.format,
        image.mean_r, image.mean_g, image.mean_b, image.std_r, image.std_g, image.std_b,
        image.confidence, image.top5_mean, image.margin, image.entropy,
    ]
    entries = image.topk or []
    for i in range(top_k):
        entry = entries[i] if i < len(entries) else {}
        row += [entry.get("label"), entry.get("index"), entry.get("probability")]
    if probability_count:
        probs = decode_vector(image.probabilities)
        # 9 significant digits round-trip a float32 exactly while keeping the file compact.
        row += [f"{p:.9g}" for p in probs] if probs else [None] * probability_count
    return row
