"""The completion-webhook outbox on the job row: claim a delivery, record its outcome."""

from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from imagebatch.db.models import FINAL_STATES, Job, WebhookState, utcnow
from imagebatch.db.session import changed_rows

_PENDING, _SENDING = WebhookState.PENDING.value, WebhookState.SENDING.value


def _due(stale_before: datetime) -> ColumnElement[bool]:
    """A finished job whose delivery was never claimed, or was claimed before `stale_before` by a
    process that never recorded an outcome (it died mid-delivery)."""
    left_sending = and_(Job.webhook_state == _SENDING, Job.webhook_claimed_at < stale_before)
    return and_(Job.state.in_(FINAL_STATES), or_(Job.webhook_state == _PENDING, left_sending))


def claim_webhook(
    *, session: Session, job_id: str, stale_before: datetime, now: datetime | None = None
) -> datetime | None:
    """Take the job's delivery (pending -> sending); the claim's time if this caller won, else None.

    One conditional UPDATE: of several processes finishing or sweeping the same job, exactly
    one delivers. The claim time is the lease the outcome is recorded against.
    """
    now = now or utcnow()
    won = changed_rows(
        session,
        update(Job).where(Job.id == job_id, _due(stale_before)).values(webhook_state=_SENDING, webhook_claimed_at=now),
    )
    return now if won else None


def record_webhook(*, session: Session, job_id: str, claimed_at: datetime, attempts: int, error: str | None) -> bool:
    """The outcome of the delivery claimed at `claimed_at`: delivered (no error) or failed.

    Refused (False) if the claim is no longer this caller's (taken again after its lease ran out).
    """
    values: dict = {"webhook_attempts": attempts}
    if error is None:
        values |= {
            "webhook_state": WebhookState.DELIVERED.value,
            "webhook_error": None,
            "webhook_delivered_at": utcnow(),
        }
    else:
        values |= {"webhook_state": WebhookState.FAILED.value, "webhook_error": error[:1000]}
    return bool(
        changed_rows(
            session,
            update(Job)
            .where(Job.id == job_id, Job.webhook_state == _SENDING, Job.webhook_claimed_at == claimed_at)
            .values(**values),
        )
    )


def due_webhooks(session: Session, *, stale_before: datetime, limit: int) -> list[str]:
    """Ids of finished jobs whose delivery is due (read-only: the claim decides who sends)."""
    return list(session.scalars(select(Job.id).where(_due(stale_before)).limit(limit)))
