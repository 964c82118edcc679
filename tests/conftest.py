"""Fixtures every test area shares: seeded random weights, failure reports, and a real API for the client and CLI."""

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebatch.worker.samples import write_sample_photos
from tests.harness import services
from tests.harness.stack import Stack
from tests.harness.weights import random_torch_home

REPO = Path(__file__).resolve().parents[1]
CLIENT_REDIS_DB = 13  # the client and CLI areas' Redis database, flushed before and after
CLIENT_PG_DATABASE = "imagebatch_cli_test"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without imagebatch settings, with the repository importable."""
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return services.clean_env(PYTHONPATH=pythonpath, **extra)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can print logs for a failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeded random-init checkpoints under the official file names (these machines are offline)."""
    return random_torch_home(tmp_path_factory, "resnet18", "resnet50")


@pytest.fixture(scope="session")
def checkpoint_sha256(torch_home: Path) -> dict[str, str]:
    checkpoints = torch_home / "hub" / "checkpoints"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in checkpoints.glob("*.pth")}


@pytest.fixture(scope="package")
def worker_ctx():
    """A worker context on the CPU from this process's settings, as worker.main builds one."""
    from imagebatch.core.config import settings
    from imagebatch.worker.context import WorkerContext

    ctx = WorkerContext.build(settings, device="cpu")
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def resnet18(torch_home: Path):
    """The worker's own loaded resnet18 on the CPU, read through torchvision from torch_home."""
    from imagebatch.worker.models import load_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(torch_home))
        return load_model("resnet18", device="cpu")


@pytest.fixture(scope="session")
def client_pg_database() -> Iterator[str]:
    with services.scratch_database(CLIENT_PG_DATABASE) as url:
        yield url


@pytest.fixture(scope="session", params=["embedded", "postgres+redis"])
def api_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real API with no worker: jobs stay queued, which is all submit/list/cancel/delete need."""
    data_dir = tmp_path_factory.mktemp(f"api-{request.param.replace('+', '-')}")
    env = clean_env(IMAGEBATCH_DATA_DIR=str(data_dir))
    with contextlib.ExitStack() as cleanup:
        if request.param == "postgres+redis":
            redis_url = cleanup.enter_context(services.private_redis(CLIENT_REDIS_DB))
            env.update(DATABASE_URL=request.getfixturevalue("client_pg_database"), REDIS_URL=redis_url)
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


@pytest.fixture(scope="session")
def bench_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Ten benchmark photos: index 7 is phone-sized (4032x3024), index 9 a PNG."""
    from bench.images import write_bench_images

    return write_bench_images(tmp_path_factory.mktemp("bench_photos"), 10, seed=3)
