"""Fixtures: a real uvicorn API process per backend (SQLite + embedded broker, PostgreSQL + Redis)."""

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import Engine, inspect, text

from imagebatch.db.session import make_engine
from tests.harness.services import clean_env, free_port, private_redis, scratch_database

REPO = Path(__file__).resolve().parents[2]
PG_DB = "imagebatch_api_test"
REDIS_DB = 11  # this test area's own Redis database
CHUNK_SIZE = 4
# A port nothing listens on: "the database / broker is down".
DEAD_PG = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
DEAD_REDIS = "redis://127.0.0.1:1/0"


@dataclass
class Api:
    """A running API process and what a test needs to look behind it."""

    base_url: str
    data_dir: Path
    roots: Path
    database_url: str
    redis_url: str | None
    process: subprocess.Popen
    log: Path
    engine: Engine | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url, timeout=30)

    @property
    def blobs(self) -> Path:
        return self.data_dir / "blobs"

    def messages(self, queue: str) -> list[tuple[str, list]]:
        """(task name, args) of every message waiting on a broker queue, oldest first."""
        if self.redis_url:
            raw = redis.Redis.from_url(self.redis_url).lrange(queue, 0, -1)
            # kombu LPUSHes, so the list's tail is the oldest message.
            payloads = [json.loads(item) for item in reversed(raw)]
        else:
            broker = make_engine(f"sqlite:///{self.data_dir / 'broker.sqlite'}")
            if not inspect(broker).has_table("kombu_message"):
                return []  # nothing has been published yet
            with broker.connect() as conn:
                rows = (
                    conn.execute(
                        text(
                            "SELECT m.payload FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id "
                            "WHERE q.name = :queue ORDER BY m.id"
                        ),
                        {"queue": queue},
                    )
                    .scalars()
                    .all()
                )
            broker.dispose()
            payloads = [json.loads(row) for row in rows]
        return [(p["headers"]["task"], json.loads(base64.b64decode(p["body"]))[0]) for p in payloads]

    def stop(self) -> None:
        self.client.close()
        if self.engine is not None:
            self.engine.dispose()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_api(
    tmp: Path, *, database_url: str | None, redis_url: str | None, roots: bool = True, extra_env: dict | None = None
) -> Api:
    """`python -m uvicorn api.main:app` on a free port, waiting until /healthz answers."""
    port = free_port()
    data_dir, root_dir = tmp / "data", tmp / "roots"
    root_dir.mkdir(parents=True, exist_ok=True)
    env = clean_env(
        PYTHONPATH=str(REPO),
        IMAGEBATCH_DATA_DIR=str(data_dir),
        IMAGEBATCH_CHUNK_SIZE=str(CHUNK_SIZE),
        # Callbacks are refused without a key to sign them with (tests/system/security checks that).
        IMAGEBATCH_WEBHOOK_SECRET="api-test-secret",
    )
    if roots:
        env["IMAGEBATCH_ALLOWED_ROOTS"] = str(root_dir)
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra_env or {})
    log = tmp / "api.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "imagebatch.api.main:app", "--port", str(port)],
        cwd=tmp,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    api = Api(
        f"http://127.0.0.1:{port}",
        data_dir,
        root_dir.resolve(),
        database_url or f"sqlite:///{data_dir / 'imagebatch.sqlite'}",
        redis_url,
        process,
        log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"API exited early:\n{log.read_text()}")
        try:
            if api.client.get("/healthz").status_code == 200:
                return api
        except httpx.TransportError:
            time.sleep(0.2)
    api.stop()
    raise RuntimeError(f"API did not start:\n{log.read_text()}")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A scratch PostgreSQL database of this test area, dropped afterwards."""
    with scratch_database(PG_DB) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with private_redis(REDIS_DB) as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def api(request, tmp_path_factory) -> Iterator[Api]:
    """The API under test, once with the embedded default and once with PostgreSQL + Redis."""
    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite":
        server = start_api(tmp, database_url=None, redis_url=None)
    else:
        server = start_api(
            tmp, database_url=request.getfixturevalue("pg_database"), redis_url=request.getfixturevalue("redis_url")
        )
    server.engine = make_engine(server.database_url)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def degraded_api(tmp_path_factory) -> Iterator[Api]:
    """SQLite database, but the broker is down and no local roots are configured."""
    server = start_api(tmp_path_factory.mktemp("api-no-broker"), database_url=None, redis_url=DEAD_REDIS, roots=False)
    server.engine = make_engine(server.database_url)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def no_db_api(tmp_path_factory) -> Iterator[Api]:
    """The database is unreachable from the start."""
    server = start_api(tmp_path_factory.mktemp("api-no-db"), database_url=DEAD_PG, redis_url=None)
    yield server
    server.stop()
