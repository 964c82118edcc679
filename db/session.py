"""The engine (made once per process) and sessions."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, Engine, Update, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from imagebatch.core.config import settings


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    # WAL lets the API read while a worker writes; busy_timeout makes writers queue, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        in_memory = not path or path == ":memory:"  # one connection, SQLAlchemy's SingletonThreadPool
        if not in_memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        pool = {} if in_memory else _pool()
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A bounded connect so requests fail fast (503) while PostgreSQL is away instead of hanging.
    connect_args = {"connect_timeout": settings.DB_CONNECT_TIMEOUT} if url.startswith("postgresql") else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **_pool())


def _pool() -> dict[str, Any]:
    # A bounded wait for a free connection: sqlalchemy.exc.TimeoutError, which the API answers 503.
    return {
        "pool_size": settings.DB_POOL_SIZE,
        "max_overflow": settings.DB_MAX_OVERFLOW,
        "pool_timeout": settings.DB_POOL_TIMEOUT,
    }


@cache
def get_engine() -> Engine:
    return make_engine(settings.database_url)


@cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def new_session() -> Session:
    return _session_factory()()


def changed_rows(session: Session, statement: Update | Delete) -> int:
    """Run an UPDATE or DELETE in the session; how many rows it matched (what conditional
    state changes decide on)."""
    # Session.execute is typed as returning Result; a DML statement's result is a CursorResult.
    return cast(CursorResult[Any], session.execute(statement)).rowcount
