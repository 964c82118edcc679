"""The private stack scripts/load.py loads: an API and workers on a scratch PostgreSQL database and a
redis-server of its own, auth on, one tenant with no job limits, random ResNet-18 weights."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imagebatch.cli.demo import free_port  # noqa: E402
from imagebatch.db.keys import create_key  # noqa: E402
from imagebatch.db.models import Job  # noqa: E402
from tests.harness.services import clean_env, scratch_database  # noqa: E402
from tests.harness.stack import Stack  # noqa: E402

TENANT = "load"
PG_DATABASE = f"imagebatch_load_{os.getpid()}"


@dataclass
class LoadStack:
    stack: Stack
    database_url: str
    key: str

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def api_pid(self) -> int:
        assert self.stack.api is not None
        return self.stack.api.pid

    def pids(self) -> dict[str, int]:
        """The process id of the API and of each worker, by the name of its log."""
        return {name: proc.pid for name, proc in self.stack.processes().items() if proc is not None}

    def job_ids(self) -> set[str]:
        engine = create_engine(self.database_url)
        try:
            with Session(engine) as session:
                return set(session.scalars(select(Job.id).where(Job.tenant == TENANT)))
        finally:
            engine.dispose()

    def jobs_created(self) -> int:
        engine = create_engine(self.database_url)
        try:
            with Session(engine) as session:
                return session.scalar(select(func.count()).select_from(Job).where(Job.tenant == TENANT)) or 0
        finally:
            engine.dispose()

    def api_log(self) -> str:
        return self.stack.logs("api", None)


@contextmanager
def redis_server(work: Path) -> Iterator[str]:
    """A redis-server without persistence on a free port (a broker nobody else uses)."""
    port = free_port()
    with open(work / "redis.log", "ab") as log:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _key(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            return create_key(session, tenant=TENANT, name="load run").secret
    finally:
        engine.dispose()


@contextmanager
def private_stack(workers: int = 1) -> Iterator[LoadStack]:
    """Start everything, yield it, stop everything (the scratch database is dropped)."""
    from imagebatch.worker.random_weights import write_random_checkpoint

    work = Path(tempfile.mkdtemp(prefix="imagebatch-load-"))
    write_random_checkpoint("resnet18", work / "torch", seed=0)
    with scratch_database(PG_DATABASE) as pg, redis_server(work) as broker:
        env = clean_env(
            TORCH_HOME=str(work / "torch"),
            DATABASE_URL=pg,
            REDIS_URL=broker,
            IMAGEBATCH_DATA_DIR=str(work / "data"),
            IMAGEBATCH_AUTH_ENABLED="true",
            IMAGEBATCH_MAX_ACTIVE_JOBS_PER_TENANT="0",
            IMAGEBATCH_MAX_IMAGES_IN_FLIGHT_PER_TENANT="0",
            IMAGEBATCH_WORKER_MODELS="resnet18",
            IMAGEBATCH_TORCH_THREADS="1",
            IMAGEBATCH_DECODE_THREADS="1",
            IMAGEBATCH_LOG_LEVEL="WARNING",
        )
        stack = Stack(env=env, log_dir=work / "logs")
        try:
            stack.start_api()
            for _ in range(workers):
                stack.start_worker(models="resnet18")
            yield LoadStack(stack, pg, _key(pg))
        finally:
            stack.stop()
            shutil.rmtree(work, ignore_errors=True)
