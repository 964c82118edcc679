"""Security fixtures: real API (+ worker) processes on PostgreSQL and Redis db 7 with auth ON."""

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from imagebatch.db.keys import create_key
from tests.harness.services import clean_env, private_redis, scratch_database
from tests.harness.stack import BIN, Stack

REDIS_DB = 7  # this test area's own Redis database
PG_DB = "imagebatch_security_test"
# Small limits so each one can be crossed with a few tiny requests.
LIMITS = {
    "IMAGEBATCH_MAX_ACTIVE_JOBS_PER_TENANT": "3",
    "IMAGEBATCH_MAX_IMAGES_IN_FLIGHT_PER_TENANT": "12",
    "IMAGEBATCH_MAX_IMAGES_PER_JOB": "10",
    "IMAGEBATCH_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
    "IMAGEBATCH_MAX_ARCHIVE_MEMBERS": "30",
    "IMAGEBATCH_MAX_ARCHIVE_UNCOMPRESSED_BYTES": str(64 * 1024 * 1024),
    "IMAGEBATCH_MAX_ARCHIVE_RATIO": "50",
}


@pytest.fixture(scope="package")
def database_url() -> Iterator[str]:
    with scratch_database(PG_DB) as url:
        yield url


@pytest.fixture(scope="package")
def redis_url() -> Iterator[str]:
    with private_redis(REDIS_DB) as url:
        yield url


@pytest.fixture(scope="package")
def uri_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uri_root").resolve()


@pytest.fixture(scope="package")
def secure_env(tmp_path_factory, torch_home, database_url, redis_url, uri_root) -> dict[str, str]:
    """Production-like settings: auth on, private URLs refused (clean_env's test defaults undone)."""
    data_dir = tmp_path_factory.mktemp("security_data")
    return clean_env(
        TORCH_HOME=str(torch_home),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        IMAGEBATCH_DATA_DIR=str(data_dir),
        IMAGEBATCH_ALLOWED_ROOTS=str(uri_root),
        IMAGEBATCH_CHUNK_SIZE="8",
        IMAGEBATCH_DECODE_THREADS="2",
        IMAGEBATCH_TORCH_THREADS="2",
        IMAGEBATCH_AUTH_ENABLED="true",
        IMAGEBATCH_ALLOW_PRIVATE_URLS="false",
        **LIMITS,
        # Hostile images are held to torchvision's reference pipeline, which is the exact decode.
        IMAGEBATCH_DECODE_MODE="exact",
    )


@pytest.fixture(scope="package")
def stack(secure_env, tmp_path_factory) -> Iterator[Stack]:
    """The API and one worker; tests that need jobs to stay queued use their own tenant and cancel."""
    stack = Stack(env=secure_env, log_dir=tmp_path_factory.mktemp("security_logs"))
    try:
        stack.start_api()
        stack.start_worker(models="resnet18")
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="package")
def api_database_url() -> Iterator[str]:
    with scratch_database(PG_DB + "_api") as url:
        yield url


@pytest.fixture(scope="package")
def api_only(secure_env, api_database_url, tmp_path_factory) -> Iterator[Stack]:
    """An API with no worker (its own database, an embedded broker nobody reads): jobs stay queued."""
    data_dir = tmp_path_factory.mktemp("security_api_only")
    env = {k: v for k, v in secure_env.items() if k != "REDIS_URL"}
    env.update(DATABASE_URL=api_database_url, IMAGEBATCH_DATA_DIR=str(data_dir))
    stack = Stack(env=env, log_dir=data_dir / "logs")
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()


def make_key(database_url: str, tenant: str) -> str:
    """A new API key for `tenant`, written straight to the database (the CLI path has its own test)."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            return create_key(session, tenant=tenant).secret
    finally:
        engine.dispose()


@pytest.fixture(scope="package")
def new_key(database_url, stack) -> Callable[[str], str]:
    """Make an API key in the full stack's database."""
    return lambda tenant: make_key(database_url, tenant)


@pytest.fixture(scope="package")
def api_key(api_database_url, api_only) -> Callable[[str], str]:
    """Make an API key in the worker-less API's database."""
    return lambda tenant: make_key(api_database_url, tenant)


def open_client(base_url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=60)


@pytest.fixture
def client_for(api_only) -> Iterator[Callable[[str | None], httpx.Client]]:
    """httpx clients against the worker-less API, with a given Bearer key (or none)."""
    clients: list[httpx.Client] = []

    def make(key: str | None) -> httpx.Client:
        client = open_client(api_only.url, key)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "imagebatch"), *args], env=env, capture_output=True, text=True, timeout=120)
