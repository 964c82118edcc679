"""Fixtures for the throughput tests: random weights, generated photos, PostgreSQL + Redis db 6."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import private_redis, scratch_database
from tests.support.weights import random_torch_home

PG_SCRATCH_DB = "imagebatch_throughput_test"
REDIS_DB = 6  # this test area's own Redis database


@pytest.fixture(scope="package")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TORCH_HOME with a seeded random resnet18 checkpoint under its official file name."""
    return random_torch_home(tmp_path_factory, "resnet18")


@pytest.fixture(scope="package")
def resnet18(torch_home: Path):
    from worker.models import load_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(torch_home))
        return load_model("resnet18", device="cpu")


@pytest.fixture(scope="package")
def bench_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Ten benchmark photos: index 7 is phone-sized (4032x3024), index 9 a PNG."""
    from imagebatch.bench.images import write_bench_images

    return write_bench_images(tmp_path_factory.mktemp("bench_photos"), 10, seed=3)


@pytest.fixture()
def pg_url() -> Iterator[str]:
    with scratch_database(PG_SCRATCH_DB) as url:
        yield url


@pytest.fixture()
def redis_url() -> Iterator[str]:
    with private_redis(REDIS_DB) as url:
        yield url
