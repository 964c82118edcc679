"""Request dependencies: a database session per request, and job lookup that 404s."""

import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException
from sqlalchemy.orm import Session

from imagebatch.db.models import JOB_ID_PATTERN, Job
from imagebatch.db.session import new_session


def get_db() -> Iterator[Session]:
    """A session for one request; routes commit explicitly, anything uncommitted rolls back."""
    session = new_session()
    try:
        yield session
    finally:
        session.close()


# Closed as the route function returns, before the response goes out: a slow reader of the
# answer never holds a pooled connection (streaming routes page with sessions of their own).
SessionDep = Annotated[Session, Depends(get_db, scope="function")]


def get_job_or_404(session: Session, job_id: str, tenant: str | None = None) -> Job:
    """The job, or 404; with auth on, another tenant's job is "not found" too (never 403)."""
    job = session.get(Job, job_id) if re.fullmatch(JOB_ID_PATTERN, job_id) else None
    if job is None or (tenant is not None and job.tenant != tenant):
        raise HTTPException(status_code=404, detail="Job not found")
    return job
