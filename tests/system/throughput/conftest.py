"""Fixtures for the throughput tests: PostgreSQL and Redis db 6."""

from collections.abc import Iterator

import pytest

from tests.harness.services import private_redis, scratch_database

PG_SCRATCH_DB = "imagebatch_throughput_test"
REDIS_DB = 6  # this test area's own Redis database


@pytest.fixture()
def pg_url() -> Iterator[str]:
    with scratch_database(PG_SCRATCH_DB) as url:
        yield url


@pytest.fixture()
def redis_url() -> Iterator[str]:
    with private_redis(REDIS_DB) as url:
        yield url
