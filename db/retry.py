"""Retry a unit of database work with exponential backoff while the database is unreachable."""

import logging
import sqlite3
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from imagebatch.core.config import settings

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def is_connection_error(exc: BaseException) -> bool:
    """A lost or refused connection (server restarting, network blip), not a bad statement."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.OperationalError):
        # SQLite reports a missing table as OperationalError too; only a busy or unreachable
        # file is worth waiting for.
        message = str(exc.orig).lower()
        return any(words in message for words in ("locked", "unable to open", "disk i/o"))
    return True  # psycopg: connection refused/lost, server shutting down or starting up


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    first = str(exc).strip().splitlines()[0] if exc and str(exc).strip() else repr(exc)
    logger.warning(
        "database unavailable (attempt %d, %.0fs so far), retrying: %s",
        state.attempt_number,
        state.seconds_since_start or 0.0,
        first,
    )


def retry_database(fn: Callable[P, R]) -> Callable[P, R]:
    """Call `fn` again (0.5 s, 1 s, 2 s ... 15 s apart) for up to settings.DB_RETRY_SECONDS.

    `fn` must be a whole transaction that is safe to run twice: claims re-claim their own
    rows and result writes are updates by primary key.
    """

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        retrying = Retrying(
            retry=retry_if_exception(is_connection_error),
            wait=wait_exponential_jitter(initial=0.5, max=15, jitter=0.5),
            stop=stop_after_delay(settings.DB_RETRY_SECONDS),
            before_sleep=_log_retry,
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)

    return wrapper
