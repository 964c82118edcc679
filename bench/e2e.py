"""The service end to end: a real API process and worker process(es) on PostgreSQL + Redis, timed from submit."""

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis

from imagebatch.client import FINAL_STATES
from imagebatch.worker.timing import parse_timing
from tests.harness.services import clean_env
from tests.harness.stack import Stack

logger = logging.getLogger(__name__)


def rss_mib(pid: int) -> dict[str, float]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a process, in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


@dataclass
class Services:
    """Where the benchmark's stack keeps its state: a scratch database and a Redis db of its own."""

    admin_pg_url: str  # libpq URL of an existing database on the server (to create the scratch one)
    database: str
    redis_url: str

    @property
    def database_url(self) -> str:
        base = self.admin_pg_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return f"{base}/{self.database}"

    def reset(self, create: bool = True) -> None:
        with psycopg.connect(self.admin_pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            if create:
                admin.execute(f'CREATE DATABASE "{self.database}"')
        redis.Redis.from_url(self.redis_url).flushdb()


def chunk_timings(log_dir: Path) -> list[dict]:
    """Every chunk-timing record the workers logged in `log_dir`."""
    records = []
    for path in log_dir.glob("worker*.log"):
        lines = path.read_text(errors="replace").splitlines()
        records += [record for record in map(parse_timing, lines) if record is not None]
    return records


def stack_env(services: Services, data_dir: Path, image_root: Path, torch_home: Path, options: dict) -> dict:
    # Throughput only: auth is off (key checks cost one indexed lookup per request, tested elsewhere).
    return clean_env(
        IMAGEBATCH_DATABASE_URL=services.database_url,
        IMAGEBATCH_REDIS_URL=services.redis_url,
        IMAGEBATCH_DATA_DIR=str(data_dir),
        IMAGEBATCH_ALLOWED_ROOTS=str(image_root),
        IMAGEBATCH_LOG_LEVEL="INFO",
        TORCH_HOME=str(torch_home),
        **{f"IMAGEBATCH_{k}": str(v) for k, v in options.items() if v is not None},
    )


def submit_and_wait(
    client: httpx.Client, stack: Stack, uris: list[str], options: dict, sample=None
) -> tuple[dict, float]:
    """Submit a manifest and poll until the job ends; (final job, wall clock of the submit call).

    Raises if a process of the stack exits meanwhile (say, a worker without weights), rather
    than polling a job nobody will run.
    """
    submitted = time.time()
    response = client.post("/v1/jobs", json={"uris": uris, **options})
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        if dead := stack.dead():
            raise RuntimeError(f"{', '.join(dead)} exited during the benchmark:\n{stack.all_logs()}")
        job = client.get(f"/v1/jobs/{job_id}").json()
        if sample:
            sample(job)
        if job["state"] in FINAL_STATES:
            return job, submitted
        time.sleep(0.2)


def commit_window(database_url: str, job_id: str) -> tuple[float, float]:
    """(created, completed) wall-clock times of a job from the database, the source of truth."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        created, completed, last = conn.execute(
            "SELECT j.created_at, j.completed_at, max(i.processed_at) FROM jobs j JOIN images i "
            "ON i.job_id = j.id WHERE j.id = %s GROUP BY j.id",
            (job_id,),
        ).fetchone()
    return created.timestamp(), max(completed, last).timestamp()


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
