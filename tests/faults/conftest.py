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

from tests.faults.scenarios import Setup
from tests.faults.services import RedisServer
from tests.support.images import write_photos
from tests.support.services import scratch_database

REDIS_DB = 8  # this test area's Redis database number
PG_DATABASE = f"imagebatch_faults_{os.getpid()}"


@contextmanager
def private_redis_server() -> Iterator[str]:
    """A redis-server of our own; yields the URL of its db REDIS_DB."""
    server = RedisServer()
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/{REDIS_DB}"
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    with private_redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def fault_setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    from worker.random_weights import write_random_checkpoint

    torch_home = tmp_path_factory.mktemp("torch_home")
    write_random_checkpoint("resnet18", torch_home, seed=0)
    image_root = tmp_path_factory.mktemp("fault_images")
    write_photos(image_root, 40)
    return Setup(torch_home=torch_home, image_root=image_root, work_dir=tmp_path_factory.mktemp("faults"))


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
    from db import session as db_session
    from db.migrate import upgrade_to_head
    from imagebatch.config import settings

    def reset() -> None:
        settings.__dict__.pop("database_url", None)
        db_session.get_engine.cache_clear()
        db_session._session_factory.cache_clear()

    previous = settings.DATABASE_URL
    settings.DATABASE_URL = url
    reset()
    try:
        assert db_session.get_engine().url.database == name
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
