"""The service end to end: a real API process and worker process(es) on PostgreSQL + Redis, timed from submit."""

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis

from imagebatch.client import FINAL_STATES
from imagebatch.demo import free_port

logger = logging.getLogger(__name__)

BIN = Path(sys.executable).parent


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


@dataclass
class Stack:
    """API + worker processes with one environment; logs in `log_dir`."""

    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([str(BIN / "imagebatch"), *args], env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        return proc

    def start(self, workers: int, model: str) -> None:
        self.spawn("api", ["serve", "--port", str(self.port)])
        for i in range(workers):
            self.spawn(f"worker{i}", ["worker", "--models", model])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited early; see {self.log_dir}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"API not ready after 120 s; see {self.log_dir}")

    def workers(self) -> list[subprocess.Popen]:
        return [p for n, p in self.procs.items() if n.startswith("worker")]

    def stop(self, names: list[str] | None = None) -> None:
        chosen = [p for n, p in self.procs.items() if names is None or n in names]
        for proc in chosen:
            if proc.poll() is None:
                proc.terminate()
        for proc in chosen:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def timings(self) -> list[dict]:
        """Every chunk-timing record the workers logged."""
        records = []
        for path in self.log_dir.glob("worker*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if "chunk-timing " in line:
                    # raw_decode: log formatters may append context after the JSON object.
                    records.append(json.JSONDecoder().raw_decode(line.split("chunk-timing ", 1)[1])[0])
        return records


def stack_env(services: Services, data_dir: Path, image_root: Path, torch_home: Path, options: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IMAGEBATCH_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "IMAGEBATCH_DATABASE_URL": services.database_url,
        "IMAGEBATCH_REDIS_URL": services.redis_url,
        "IMAGEBATCH_DATA_DIR": str(data_dir),
        "IMAGEBATCH_ALLOWED_ROOTS": str(image_root),
        "IMAGEBATCH_LOG_LEVEL": "INFO",
        # Throughput only: key checks cost one indexed lookup per request and are tested elsewhere.
        "IMAGEBATCH_AUTH_ENABLED": "false",
        "TORCH_HOME": str(torch_home),
    })
    env.update({f"IMAGEBATCH_{k}": str(v) for k, v in options.items() if v is not None})
    return env


def submit_and_wait(client: httpx.Client, uris: list[str], options: dict, sample=None) -> tuple[dict, float]:
    """Submit a manifest and poll until the job ends; (final job, wall clock of the submit call)."""
    submitted = time.time()
    response = client.post("/v1/jobs", json={"uris": uris, **options})
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
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
            "ON i.job_id = j.id WHERE j.id = %s GROUP BY j.id", (job_id,)).fetchone()
    return created.timestamp(), max(completed, last).timestamp()


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
