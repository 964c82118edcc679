"""Fixtures that bring up real stacks: PostgreSQL + Redis, and the embedded SQLite default."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.services import clean_env, private_redis, scratch_database
from tests.harness.stack import Stack

REDIS_DB = 14  # this test area's own Redis database


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    with scratch_database("imagebatch_e2e") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with private_redis(REDIS_DB) as url:
        yield url


def _start(env: dict[str, str], log_dir: Path, workers: int = 1) -> Stack:
    stack = Stack(env=env, log_dir=log_dir)
    try:
        stack.start_api()
        for _ in range(workers):
            stack.start_worker()
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="session")
def uri_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uri_root")


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory, torch_home, pg_database, redis_url, uri_root) -> Iterator[Stack]:
    """API + one worker on PostgreSQL and Redis."""
    data_dir = tmp_path_factory.mktemp("pg_stack")
    env = clean_env(
        TORCH_HOME=str(torch_home),
        DATABASE_URL=pg_database,
        REDIS_URL=redis_url,
        IMAGEBATCH_DATA_DIR=str(data_dir),
        IMAGEBATCH_ALLOWED_ROOTS=str(uri_root),
        IMAGEBATCH_CHUNK_SIZE="8",
        IMAGEBATCH_EMBEDDING_DTYPE="float32",
        # These tests hold results to torchvision's reference pipeline (1e-4); the default fast
        # decode is within one pixel level of it (tests/throughput/test_decode_modes.py).
        IMAGEBATCH_DECODE_MODE="exact",
    )
    stack = _start(env, data_dir / "logs")
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory, torch_home) -> Iterator[Stack]:
    """API + one worker on the embedded defaults: SQLite database and SQLite broker."""
    data_dir = tmp_path_factory.mktemp("embedded_stack")
    env = clean_env(TORCH_HOME=str(torch_home), IMAGEBATCH_DATA_DIR=str(data_dir))
    stack = _start(env, data_dir / "logs")
    yield stack
    stack.stop()


@pytest.fixture
def pg_client(pg_stack: Stack, request) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pg_stack.url, timeout=60) as client:
        yield client
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(pg_stack.all_logs())  # shown by pytest with the failure
