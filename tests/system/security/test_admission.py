"""Admission under concurrency: a crowd of submissions on a small pool, and tenant limits under races."""

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import func, select

from imagebatch.db.lifecycle.admission import tenant_lock_key
from imagebatch.db.models import Image, Job
from imagebatch.db.session import make_engine
from tests.harness.services import libpq_url, private_redis, scratch_database
from tests.harness.stack import Stack
from tests.system.security.conftest import make_key
from tests.system.security.test_auth import _jpeg

pytestmark = pytest.mark.e2e

REDIS_DB = 4  # this module's own Redis database
CROWD, FILES_PER_JOB = 80, 4
MOST_JOBS, RACERS = 3, 8


@contextmanager
def _api(env: dict[str, str], log_dir: Path) -> Iterator[Stack]:
    stack = Stack(env=env, log_dir=log_dir)
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def crowded(secure_env, tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    """PostgreSQL + Redis with a pool of three connections and no per-tenant limits (no worker)."""
    data_dir = tmp_path_factory.mktemp("admission_crowd")
    with scratch_database("imagebatch_admission_crowd") as url, private_redis(REDIS_DB) as redis_url:
        env = secure_env | {
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "IMAGEBATCH_DATA_DIR": str(data_dir),
            "IMAGEBATCH_DB_POOL_SIZE": "3",
            "IMAGEBATCH_DB_MAX_OVERFLOW": "0",
            "IMAGEBATCH_MAX_ACTIVE_JOBS_PER_TENANT": "0",
            "IMAGEBATCH_MAX_IMAGES_IN_FLIGHT_PER_TENANT": "0",
        }
        with _api(env, data_dir / "logs") as stack:
            yield stack, url


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def limited(request, secure_env, tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    """An API allowing each tenant MOST_JOBS active jobs, on PostgreSQL or SQLite (no worker)."""
    data_dir = tmp_path_factory.mktemp(f"admission_{request.param}")
    env = {k: v for k, v in secure_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "IMAGEBATCH_DATA_DIR": str(data_dir),
        "IMAGEBATCH_MAX_ACTIVE_JOBS_PER_TENANT": str(MOST_JOBS),
        "IMAGEBATCH_MAX_IMAGES_IN_FLIGHT_PER_TENANT": "0",
    }
    if request.param == "sqlite":  # the embedded defaults: SQLite database and broker
        with _api(env, data_dir / "logs") as stack:
            yield stack, f"sqlite:///{data_dir / 'imagebatch.sqlite'}"
        return
    with (
        scratch_database("imagebatch_admission_limits") as url,
        _api(env | {"DATABASE_URL": url}, data_dir / "logs") as stack,
    ):
        yield stack, url


def _files(seed: int, n: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"{seed}_{i}.jpg", _jpeg(seed * 10 + i), "image/jpeg")) for i in range(n)]


def _submit_at_once(url: str, key: str, bodies: list[list]) -> list[httpx.Response]:
    """POST every body at the same moment, each on its own connection."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(bodies))
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=180, limits=limits) as client:
            return await asyncio.gather(*(client.post("/v1/jobs", files=files) for files in bodies))

    return asyncio.run(run())


def _tenant_jobs(database_url: str, tenant: str) -> dict[str, int]:
    """Each of the tenant's jobs in the database with its number of image rows."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Job.id, func.count(Image.id))
                .outerjoin(Image, Image.job_id == Job.id)
                .where(Job.tenant == tenant)
                .group_by(Job.id)
            ).all()
    finally:
        engine.dispose()
    return {job_id: images for job_id, images in rows}


def _new_tenant(database_url: str) -> tuple[str, str]:
    tenant = f"adm-{uuid.uuid4().hex[:8]}"
    return tenant, make_key(database_url, tenant)


def _check_overload_answers(responses: list[httpx.Response]) -> None:
    for response in responses:
        assert response.status_code in (202, 503), (response.status_code, response.text)
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) >= 1, response.headers


def test_a_crowd_of_submissions_on_a_small_pool_gets_no_500(crowded):
    """Many more concurrent submissions than pooled connections: every answer is 202 (or 503 with
    Retry-After), and the jobs in the database are exactly the ones answered 202."""
    stack, database_url = crowded
    tenant, key = _new_tenant(database_url)
    responses = _submit_at_once(stack.url, key, [_files(n, FILES_PER_JOB) for n in range(CROWD)])
    statuses = Counter(r.status_code for r in responses)
    print(f"{CROWD} concurrent submissions on a pool of 3: {dict(statuses)}")
    _check_overload_answers(responses)
    accepted = {r.json()["id"] for r in responses if r.status_code == 202}
    assert accepted, stack.logs("api")
    assert _tenant_jobs(database_url, tenant) == dict.fromkeys(accepted, FILES_PER_JOB)
    assert "Traceback" not in stack.logs("api", None)


def _race(stack: Stack, database_url: str, new_tenant: Callable[[str], tuple[str, str]]) -> None:
    tenant, key = new_tenant(database_url)
    responses = _submit_at_once(stack.url, key, [_files(n, 1) for n in range(RACERS)])
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: MOST_JOBS, 429: RACERS - MOST_JOBS}, [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 429):
        assert "MAX_ACTIVE_JOBS_PER_TENANT" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) >= 1
    assert len(_tenant_jobs(database_url, tenant)) == MOST_JOBS


def test_concurrent_submissions_never_pass_the_active_jobs_limit(limited):
    stack, database_url = limited
    for _ in range(3):  # a race lost once can be won the next time: a few tenants, each racing
        _race(stack, database_url, _new_tenant)


@pytest.fixture(scope="module")
def one_at_a_time(secure_env, tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    """An API that reads one submission at a time and lets the next wait one second (SQLite)."""
    data_dir = tmp_path_factory.mktemp("admission_gate")
    env = {k: v for k, v in secure_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "IMAGEBATCH_DATA_DIR": str(data_dir),
        "IMAGEBATCH_MAX_SUBMISSIONS_IN_FLIGHT": "1",
        "IMAGEBATCH_SUBMIT_QUEUE_TIMEOUT": "1",
    }
    with _api(env, data_dir / "logs") as stack:
        yield stack, f"sqlite:///{data_dir / 'imagebatch.sqlite'}"


def test_a_submission_that_cannot_get_a_turn_is_503_with_retry_after(one_at_a_time):
    stack, database_url = one_at_a_time
    _, key = _new_tenant(database_url)
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    body = json.dumps({"uris": ["https://images.example.com/a.jpg"]}).encode()
    started = threading.Event()

    def slowly() -> Iterator[bytes]:  # holds the only turn for a few seconds
        yield body[:10]
        started.set()
        time.sleep(4)
        yield body[10:]

    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(
            httpx.post,
            f"{stack.url}/v1/jobs",
            content=slowly(),
            headers=headers,
            timeout=60,
        )
        started.wait(timeout=30)
        time.sleep(0.5)  # the slow body is being read
        refused = httpx.post(f"{stack.url}/v1/jobs", content=body, headers=headers)
        assert refused.status_code == 503, refused.text
        assert "MAX_SUBMISSIONS_IN_FLIGHT" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) >= 1
        assert slow.result().status_code == 202, slow.result().text


@pytest.fixture(scope="module")
def one_connection(secure_env, tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    """PostgreSQL with a pool of one connection, waited for at most half a second (no worker)."""
    data_dir = tmp_path_factory.mktemp("admission_pool")
    with scratch_database("imagebatch_admission_pool") as url:
        env = {k: v for k, v in secure_env.items() if k != "REDIS_URL"} | {
            "DATABASE_URL": url,
            "IMAGEBATCH_DATA_DIR": str(data_dir),
            "IMAGEBATCH_DB_POOL_SIZE": "1",
            "IMAGEBATCH_DB_MAX_OVERFLOW": "0",
            "IMAGEBATCH_DB_POOL_TIMEOUT": "0.5",
            "IMAGEBATCH_API_THREADS": "4",
        }
        with _api(env, data_dir / "logs") as stack:
            yield stack, url


def _waiting_on_a_lock(database_url: str) -> bool:
    with psycopg.connect(libpq_url(database_url)) as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' AND datname = current_database()"
        row = conn.execute(query).fetchone()
        return bool(row and row[0])


def test_an_exhausted_pool_is_503_with_retry_after_not_500(one_connection):
    """A submission waiting on its tenant's lock holds the only connection: another request
    answers 503 with Retry-After after DB_POOL_TIMEOUT, and the submission still goes through."""
    stack, database_url = one_connection
    tenant, key = _new_tenant(database_url)
    headers = {"Authorization": f"Bearer {key}"}
    with psycopg.connect(libpq_url(database_url), autocommit=True) as holder, ThreadPoolExecutor(1) as pool:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", tenant_lock_key(tenant))
        files = _files(1, 1)
        waiting = pool.submit(httpx.post, f"{stack.url}/v1/jobs", files=files, headers=headers, timeout=60)
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(database_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        busy = httpx.get(f"{stack.url}/v1/jobs", headers=headers, timeout=30)
        assert busy.status_code == 503, busy.text
        assert int(busy.headers["retry-after"]) >= 1 and "IMAGEBATCH_DB_POOL_SIZE" in busy.json()["detail"]
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", tenant_lock_key(tenant))
        assert waiting.result().status_code == 202, waiting.result().text
    assert "Traceback" not in stack.logs("api", None)
