"""Fixtures of the training tests: one torch thread, random base weights, small labelled image sets."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from imagebatch.worker.training.digits import DigitsFolders, write_digits
from tests.harness.weights import random_torch_home


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The 2 cores are shared: two OpenMP threads stall at every barrier while either one is descheduled
    (a training step measured 4x slower than with one thread on the loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="package")
def base_weights_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_torch_home(tmp_path_factory, "resnet18")


@pytest.fixture
def pretrained(base_weights_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TORCH_HOME with a seeded random resnet18 checkpoint under its official name (the machine is offline)."""
    monkeypatch.setenv("TORCH_HOME", str(base_weights_home))
    return base_weights_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"


@pytest.fixture(scope="package")
def digits(tmp_path_factory: pytest.TempPathFactory) -> DigitsFolders:
    """All 1,797 digits at 32x32: 1,437 to train on, 360 held out."""
    return write_digits(tmp_path_factory.mktemp("digits"), size=32)


@pytest.fixture(scope="package")
def tiny_digits(tmp_path_factory: pytest.TempPathFactory) -> DigitsFolders:
    """6 images per digit in each part: enough to run the loop, quick enough to run it several times."""
    return write_digits(tmp_path_factory.mktemp("tiny_digits"), size=32, per_class=6)
