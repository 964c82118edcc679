"""Fixtures that bring up real stacks: PostgreSQL + Redis, and the embedded SQLite default."""

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from tests.e2e.stack import Stack, base_env

ADMIN_PG_URL = os.environ.get(
    "IMAGEBATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("IMAGEBATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
E2E_DATABASE = "imagebatch_e2e"


def _libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")


def _database_url(name: str) -> str:
    return ADMIN_PG_URL.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeded random-init checkpoints under the official file names (the machine is offline)."""
    from worker.random_weights import write_random_checkpoint

    home = tmp_path_factory.mktemp("torch_home")
    write_random_checkpoint("resnet18", home, seed=0)
    write_random_checkpoint("resnet50", home, seed=0)
    return home


@pytest.fixture(scope="session")
def checkpoint_sha256(torch_home: Path) -> dict[str, str]:
    checkpoints = torch_home / "hub" / "checkpoints"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in checkpoints.glob("*.pth")}


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A scratch PostgreSQL database, dropped afterwards."""
    with psycopg.connect(_libpq_url(ADMIN_PG_URL), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {E2E_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {E2E_DATABASE}")
    yield _database_url(E2E_DATABASE)
    with psycopg.connect(_libpq_url(ADMIN_PG_URL), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {E2E_DATABASE} WITH (FORCE)")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.flushdb()
    yield REDIS_TEST_URL
    client.flushdb()


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
    env = base_env(
        TORCH_HOME=str(torch_home),
        DATABASE_URL=pg_database,
        REDIS_URL=redis_url,
        IMAGEBATCH_DATA_DIR=str(data_dir),
        IMAGEBATCH_ALLOWED_ROOTS=str(uri_root),
        IMAGEBATCH_CHUNK_SIZE="8",
        IMAGEBATCH_EMBEDDING_DTYPE="float32",
    )
    stack = _start(env, data_dir / "logs")
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory, torch_home) -> Iterator[Stack]:
    """API + one worker on the embedded defaults: SQLite database and SQLite broker."""
    data_dir = tmp_path_factory.mktemp("embedded_stack")
    env = base_env(TORCH_HOME=str(torch_home), IMAGEBATCH_DATA_DIR=str(data_dir))
    stack = _start(env, data_dir / "logs")
    yield stack
    stack.stop()


@pytest.fixture
def pg_client(pg_stack: Stack, request) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pg_stack.url, timeout=60) as client:
        yield client
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(pg_stack.all_logs())


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
