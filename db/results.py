"""Read-side queries for the API: job pages with counts, filtered results, keyset cursors, result items."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, defer

from imagebatch.core import results
from imagebatch.db.cursors import JobCursor, ResultCursor, decode_cursor, encode_cursor
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
        after = decode_cursor(cursor, JobCursor)
        query = query.where(or_(Job.created_at < after.c, and_(Job.created_at == after.c, Job.id < after.i)))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    jobs = list(session.scalars(query))
    if len(jobs) <= limit:
        return jobs, None
    jobs = jobs[:limit]
    tail = jobs[-1]
    return jobs, encode_cursor(JobCursor(c=as_utc(tail.created_at), i=tail.id))


@dataclass(frozen=True)
class ResultFilters:
    label: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    max_entropy: float | None = None
    status: str | None = None
    errors_only: bool = False
    correct: bool | None = None  # evaluations: processed images whose top-1 is (not) their true label

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
        if self.correct is not None:
            agrees = Image.top1_label == Image.true_label
            where += [Image.status == ImageStatus.OK.value, Image.true_label.is_not(None)]
            where.append(agrees if self.correct else ~agrees)
        return where


def _after_index(cursor: str | None) -> int:
    return decode_cursor(cursor, ResultCursor).after if cursor else -1


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
    heavy = [defer(getattr(Image, name)) for name in results.INCLUDABLE if name not in include]
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
    return images, encode_cursor(ResultCursor(after=images[-1].idx))


def iter_item_pages(
    job_id: str, filters: ResultFilters, *, page_size: int, include: Iterable[str] = (), embedding_dtype: str = "<f4"
) -> Iterator[list[dict[str, Any]]]:
    """Every matching image as JSON items, a page (and a short transaction) at a time; for streaming exports."""
    include = tuple(include)
    cursor = None
    while True:
        with session_scope() as session:
            images, cursor = result_page(
                session, job_id=job_id, filters=filters, limit=page_size, cursor=cursor, include=include
            )
            items = [result_item(image, embedding_dtype=embedding_dtype, include=include) for image in images]
        yield items
        if cursor is None:
            return


def result_item(image: Image, *, embedding_dtype: str, include: Iterable[str] = ()) -> dict[str, Any]:
    """One image row as the schema's JSON item; heavy vectors only when asked for (and loaded)."""
    columns = {name: getattr(image, name) for name in results.item_columns(include)}
    return results.item_from_columns(columns, embedding_dtype=embedding_dtype, include=include)


def label_set(session: Session, weights: str) -> list[str] | None:
    return session.scalar(select(LabelSet.labels).where(LabelSet.weights == weights))
