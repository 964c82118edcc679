"""Real API processes for client and CLI tests: embedded (SQLite) and PostgreSQL + Redis."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebatch.samples import write_sample_photos
from tests.support import services
from tests.support.stack import Stack

REPO = Path(__file__).resolve().parents[2]
REDIS_DB = 13  # a Redis database number of our own, flushed before and after
PG_DATABASE = "imagebatch_cli_test"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without imagebatch settings, with the repo importable."""
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return services.clean_env(PYTHONPATH=pythonpath, **extra)


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
        stack = Stack(env=env, log_dir=data_dir, cwd=data_dir)
        cleanup.callback(stack.stop)
        stack.start_api()
        yield stack.url


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 3 sample photos, one in a subfolder, plus a non-image file folders skip."""
    root = tmp_path_factory.mktemp("photos") / "photos"
    write_sample_photos(root, 2)
    write_sample_photos(root / "more", 1)
    (root / "notes.md").write_text("not an image")
    return root
