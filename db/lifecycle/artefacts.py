"""Artefact transitions: request (insert once per cache key), mark its task sent, pending -> ready | failed,
and a failure old enough back to pending (asked again)."""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from imagebatch.core.artefacts import FAILED, PENDING, READY
from imagebatch.db.models import Artefact, utcnow
from imagebatch.db.session import changed_rows


def request_artefact(*, session: Session, cache_key: str, **values: object) -> Artefact:
    """The artefact row of `cache_key`, inserted pending when there is none yet.

    Two requests at once both try to insert; the unique key lets one in and the other reads its row
    (inside a savepoint, so the caller's transaction lives on).
    """
    found = session.scalar(select(Artefact).where(Artefact.cache_key == cache_key))
    if found is not None:
        return found
    row = Artefact(cache_key=cache_key, state=PENDING, **values)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return session.scalars(select(Artefact).where(Artefact.cache_key == cache_key)).one()
    return row


def mark_sent(*, session: Session, artefact_id: int, unsent_since: datetime) -> bool:
    """Claim the sending of a pending artefact's build task: True if it was never sent, or last sent before
    `unsent_since` (its message may be lost); False when another request sent it lately or it is done."""
    never = Artefact.sent_at.is_(None)
    stale = Artefact.sent_at < unsent_since
    statement = (
        update(Artefact)
        .where(Artefact.id == artefact_id, Artefact.state == PENDING, never | stale)
        .values(sent_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return changed_rows(session, statement) == 1


def finish_artefact(
    *, session: Session, artefact_id: int, storage_key: str, size_bytes: int, weights_sha256: str
) -> bool:
    """pending -> ready with the stored file; False when it was already ready or failed (a duplicate build)."""
    statement = (
        update(Artefact)
        .where(Artefact.id == artefact_id, Artefact.state == PENDING)
        .values(
            state=READY,
            storage_key=storage_key,
            size_bytes=size_bytes,
            weights_sha256=weights_sha256,
            finished_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return changed_rows(session, statement) == 1


def fail_artefact(*, session: Session, artefact_id: int, error: str) -> bool:
    """pending -> failed with the reason the API answers with; False when it had already ended."""
    statement = (
        update(Artefact)
        .where(Artefact.id == artefact_id, Artefact.state == PENDING)
        .values(state=FAILED, error=error[:2000], finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return changed_rows(session, statement) == 1


def retry_failed(*, session: Session, artefact_id: int, failed_before: datetime) -> bool:
    """failed -> pending when it failed before `failed_before`: a request after that builds it again (the cause
    may have passed: storage or the database were down). Sooner, the failure stands and is answered."""
    statement = (
        update(Artefact)
        .where(Artefact.id == artefact_id, Artefact.state == FAILED, Artefact.finished_at < failed_before)
        .values(state=PENDING, error=None, sent_at=None, finished_at=None)
        .execution_options(synchronize_session=False)
    )
    return changed_rows(session, statement) == 1
