"""One real stack for the interface tests: API + one resnet18 worker on PostgreSQL and Redis db 9,
with JSON logs, worker metrics, webhook signing and API keys switched on."""

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.harness.images import write_broken, write_photos
from tests.harness.services import clean_env, free_port, private_redis, scratch_database
from tests.harness.stack import Stack, wait_for_job

REDIS_DB = 9  # the interfaces area's own Redis database
PG_DATABASE = "imagebatch_interfaces_test"
WEBHOOK_SECRET = "interfaces-test-secret"
CHUNK_SIZE = 4


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with scratch_database(PG_DATABASE) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with private_redis(REDIS_DB) as url:
        yield url


@pytest.fixture(scope="session")
def stack(tmp_path_factory, torch_home, pg_url, redis_url) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("interfaces_stack")
    env = clean_env(
        TORCH_HOME=str(torch_home),
        DATABASE_URL=pg_url,
        REDIS_URL=redis_url,
        IMAGEBATCH_DATA_DIR=str(data_dir),
        IMAGEBATCH_CHUNK_SIZE=str(CHUNK_SIZE),
        IMAGEBATCH_WORKER_MODELS="resnet18",
        IMAGEBATCH_WORKER_METRICS_PORT=str(free_port()),
        IMAGEBATCH_LOG_JSON="true",
        IMAGEBATCH_WORKER_EVENTS="true",
        IMAGEBATCH_WEBHOOK_SECRET=WEBHOOK_SECRET,
        # The webhook receiver of these tests listens on loopback.
        IMAGEBATCH_ALLOW_PRIVATE_URLS="true",
        IMAGEBATCH_AUTH_ENABLED="true",
        IMAGEBATCH_TORCH_THREADS="1",
        IMAGEBATCH_DECODE_THREADS="1",
    )
    stack = Stack(env=env, log_dir=data_dir / "logs")
    try:
        stack.start_api()
        stack.start_worker(models="resnet18")
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def api_key(stack: Stack, pg_url: str) -> str:
    """A real key for tenant "interfaces", made the way `imagebatch keys create` makes one."""
    from imagebatch.db.keys import create_key

    engine = create_engine(pg_url)
    try:
        with Session(engine) as session:
            key = create_key(session, tenant="interfaces", name="interface tests")
            session.commit()
    finally:
        engine.dispose()
    return key.secret


@pytest.fixture
def client(stack: Stack, api_key: str, request) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=stack.url, timeout=60, headers=headers) as http:
        yield http
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(stack.all_logs())


@pytest.fixture(scope="session")
def finished_job(stack: Stack, api_key: str, tmp_path_factory) -> dict:
    """One completed job shared by the read-only tests: 9 photos and a truncated JPEG."""
    folder = tmp_path_factory.mktemp("shared_photos")
    paths = write_photos(folder, 9) + [write_broken(folder / "broken")["truncated"]]
    files = [("files", (p.name, p.read_bytes())) for p in paths]
    with httpx.Client(base_url=stack.url, timeout=60, headers={"Authorization": f"Bearer {api_key}"}) as http:
        response = http.post("/v1/jobs", files=files, data={"top_k": "5"})
        assert response.status_code == 202, response.text
        job = wait_for_job(http, response.json()["id"], timeout=180)
    assert job["state"] == "completed", stack.all_logs()
    return {"job": job, "paths": paths}


def wait_until(predicate, timeout: float = 30, interval: float = 0.2):
    """Poll `predicate` until it returns something truthy; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s")
