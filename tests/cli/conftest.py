"""Real API processes for client and CLI tests: embedded (SQLite) and PostgreSQL + Redis."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from imagebatch.samples import write_sample_photos

REPO = Path(__file__).resolve().parents[2]
ADMIN_PG_URL = os.environ.get("IMAGEBATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# A Redis database number of our own, flushed before and after.
REDIS_URL = os.environ.get("IMAGEBATCH_TEST_CLI_REDIS_URL", "redis://127.0.0.1:6379/13")
PG_DATABASE = "imagebatch_cli_test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without imagebatch settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IMAGEBATCH_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


@dataclass
class Service:
    """A child process with its log file; stop() terminates, then kills."""

    proc: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], log: Path) -> "Service":
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, env=env, cwd=log.parent, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
        return cls(proc, log)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_api(env: dict[str, str], log_dir: Path) -> tuple[Service, str]:
    """uvicorn api.main:app on a free port, waited for until /readyz answers 200."""
    port = free_port()
    api = Service.start([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                         "--port", str(port)], env, log_dir / "api.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if api.proc.poll() is not None:
            raise RuntimeError(f"API exited with {api.proc.returncode}:\n{api.tail()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return api, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            api.stop()
            raise TimeoutError(f"API not ready after 60s:\n{api.tail()}")
        time.sleep(0.2)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    with psycopg.connect(_libpq(ADMIN_PG_URL), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    yield ADMIN_PG_URL.rsplit("/", 1)[0] + f"/{PG_DATABASE}"
    with psycopg.connect(_libpq(ADMIN_PG_URL), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


@pytest.fixture(scope="session", params=["embedded", "postgres+redis"])
def api_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real API with no worker: jobs stay queued, which is all submit/list/cancel/delete need."""
    data_dir = tmp_path_factory.mktemp(f"api-{request.param.replace('+', '-')}")
    env = clean_env(IMAGEBATCH_DATA_DIR=str(data_dir))
    broker = None
    if request.param == "postgres+redis":
        broker = redis.Redis.from_url(REDIS_URL)
        broker.flushdb()
        env.update(DATABASE_URL=request.getfixturevalue("pg_database_url"), REDIS_URL=REDIS_URL)
    api, url = start_api(env, data_dir)
    yield url
    api.stop()
    if broker is not None:
        broker.flushdb()
        broker.close()


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 3 sample photos, one in a subfolder, plus a non-image file folders skip."""
    root = tmp_path_factory.mktemp("photos") / "photos"
    write_sample_photos(root, 2)
    write_sample_photos(root / "more", 1)
    (root / "notes.md").write_text("not an image")
    return root
