"""The first int8 forwards of a worker's chunks may start at the same moment: they must not freeze the process."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from imagebatch.worker.modeltools.int8_runtimes import FirstCallAlone
from tests.harness.occupancy import Occupancy
from tests.harness.services import clean_env
from tests.worker.conftest import REPO

DRIVER = Path(__file__).with_name("openvino_first_calls.py")
# Before FirstCallAlone, 6 of 16 such processes (8 threads each) froze on this 2-core machine: six
# processes catch that about 19 times in 20.
PROCESSES, THREADS = 6, 8


class TwoOutputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.conv(x).mean((2, 3))
        return 2 * embedding, embedding


def _run(model_xml: Path) -> str:
    try:
        run = subprocess.run(
            [sys.executable, str(DRIVER), str(model_xml), str(THREADS)],
            env=clean_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=90,
        )
    except subprocess.TimeoutExpired:
        return "frozen"
    return run.stdout.strip() or run.stderr[-2000:]


def test_first_openvino_calls_from_many_threads_at_once_all_return(tmp_path: Path) -> None:
    import openvino as ov

    model_xml = tmp_path / "tiny.xml"
    ov.save_model(ov.convert_model(TwoOutputs().eval(), example_input=torch.randn(2, 3, 16, 16)), str(model_xml))
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(_run, [model_xml] * PROCESSES))
    assert outcomes == [f"finished {THREADS}"] * PROCESSES


def test_the_first_call_runs_alone_and_later_ones_side_by_side() -> None:
    first_call = FirstCallAlone()
    occupancy = Occupancy()

    def call() -> int:
        occupancy.stay(0.2)
        return 7

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: first_call.run(call), range(4))) == [7] * 4
    assert occupancy.peak < 4  # the first ran alone, so never all four inside at once
    occupancy.peak = 0
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: first_call.run(call), range(4))) == [7] * 4
    assert occupancy.peak == 4  # afterwards nothing holds them apart


def test_a_first_call_that_fails_leaves_the_next_one_first() -> None:
    first_call = FirstCallAlone()

    def failing() -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        first_call.run(failing)
    assert first_call.run(lambda: 3) == 3
