"""Fixtures for fault tests: random weights, a photo folder, a scratch PostgreSQL database, Redis.

Names carry the process id and Redis is a private server (db 8 on it): two runs of the suite
at once on a shared machine (observed) must not drop each other's database or flush each
other's queues in the middle of a fault scenario.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from tests.harness.faults import Setup, prepare
from tests.harness.servers import private_redis_server
from tests.harness.services import DB_SUFFIX, scratch_database

PG_DATABASE = f"imagebatch_faults_{os.getpid()}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    with private_redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def fault_setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return prepare(
        tmp_path_factory.mktemp("torch_home"),
        tmp_path_factory.mktemp("fault_images"),
        tmp_path_factory.mktemp("faults"),
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh scratch database per test, so row counts belong to that test alone."""
    with scratch_database(PG_DATABASE) as url:
        yield url


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    yield redis_server
    client.flushdb()
    client.close()


@contextmanager
def use_database(url: str, name: str) -> Iterator[str]:
    """Point this process's engine at `url` and migrate it to head; restore afterwards."""
    from imagebatch.core.config import settings
    from imagebatch.db import session as db_session
    from imagebatch.db.migrate import upgrade_to_head

    def reset() -> None:
        settings.__dict__.pop("database_url", None)
        db_session.get_engine.cache_clear()
        db_session._session_factory.cache_clear()

    previous = settings.DATABASE_URL
    settings.DATABASE_URL = url
    reset()
    try:
        assert db_session.get_engine().url.database == name + DB_SUFFIX
        upgrade_to_head()
        yield url
    finally:
        db_session.get_engine().dispose()
        settings.DATABASE_URL = previous
        reset()


@pytest.fixture
def migrated_pg(pg_url: str) -> Iterator[str]:
    """The scratch database migrated to head, with this process's engine pointed at it."""
    with use_database(pg_url, PG_DATABASE) as url:
        yield url
