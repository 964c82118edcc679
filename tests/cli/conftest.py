"""Real API processes for client and CLI tests: embedded (SQLite) and PostgreSQL + Redis."""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from imagebatch.samples import write_sample_photos
from tests.support import services
from tests.support.services import free_port

REPO = Path(__file__).resolve().parents[2]
REDIS_DB = 13  # a Redis database number of our own, flushed before and after
PG_DATABASE = "imagebatch_cli_test"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without imagebatch settings, with the repo importable."""
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return services.clean_env(PYTHONPATH=pythonpath, **extra)


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


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    with services.scratch_database(PG_DATABASE) as url:
        yield url


@pytest.fixture(scope="session", params=["embedded", "postgres+redis"])
def api_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real API with no worker: jobs stay queued, which is all submit/list/cancel/delete need."""
    data_dir = tmp_path_factory.mktemp(f"api-{request.param.replace('+', '-')}")
    env = clean_env(IMAGEBATCH_DATA_DIR=str(data_dir))
    with contextlib.ExitStack() as cleanup:
        if request.param == "postgres+redis":
            redis_url = cleanup.enter_context(services.private_redis(REDIS_DB))
            env.update(DATABASE_URL=request.getfixturevalue("pg_database_url"), REDIS_URL=redis_url)
        api, url = start_api(env, data_dir)
        yield url
        api.stop()


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 3 sample photos, one in a subfolder, plus a non-image file folders skip."""
    root = tmp_path_factory.mktemp("photos") / "photos"
    write_sample_photos(root, 2)
    write_sample_photos(root / "more", 1)
    (root / "notes.md").write_text("not an image")
    return root
