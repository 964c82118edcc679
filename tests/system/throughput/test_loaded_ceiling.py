"""The benchmark's both-cores-busy measurement holds whole forwards, however slow one is next to a decode."""

import os
import threading
import time
from pathlib import Path

import pytest
import torch

from bench import offline
from imagebatch.worker.devices import Precision
from imagebatch.worker.samples import write_sample_photos


def test_a_forward_slower_than_the_whole_decode_pass_is_still_measured(worker_ctx, resnet18, tmp_path: Path) -> None:
    # Three photos decode in a few milliseconds; each stand-in forward takes 0.15 s (a slow CPU's int8
    # forward of a batch, scaled down): the window must stretch until three forwards have ended in it.
    paths = write_sample_photos(tmp_path, 3)
    forward_seconds, batch = 0.15, 4

    def slow_net(threads: int):
        assert torch.get_num_threads() == threads == 1

        def forward(x: torch.Tensor):
            time.sleep(forward_seconds)
            return x, x

        return forward

    precision = Precision("fp32", "fp32", "cpu")
    busy = offline.decode_beside_forward(worker_ctx, resnet18, paths, precision, batch, slow_net)

    assert busy["forwards"] >= 3 and busy["decoded"] >= len(paths)
    # Whole forwards between the first and the last end: batch / 0.15 s, give or take the scheduler.
    assert busy["forward_img_s"] == pytest.approx(batch / forward_seconds, rel=0.25)
    cores = os.cpu_count() or 1
    assert busy["ceiling_img_s"] == pytest.approx(cores / (1 / busy["decode_img_s"] + 1 / busy["forward_img_s"]))


def test_a_window_of_fewer_than_two_forwards_is_refused(worker_ctx, resnet18, tmp_path: Path) -> None:
    precision = Precision("fp32", "fp32", "cpu")
    with pytest.raises(ValueError, match="at least two forwards"):
        photos = write_sample_photos(tmp_path, 1)
        offline.decode_beside_forward(worker_ctx, resnet18, photos, precision, 4, min_forwards=1)


def test_a_failing_forward_ends_the_measurement_with_its_error(worker_ctx, resnet18, tmp_path: Path) -> None:
    calls = []

    def breaking_net(threads: int):
        def forward(x: torch.Tensor):
            calls.append(1)
            if len(calls) > 1:  # the warm-up passes; the first timed forward breaks
                raise MemoryError("out of memory in the forward")
            return x, x

        return forward

    precision = Precision("fp32", "fp32", "cpu")
    with pytest.raises(RuntimeError, match="the forward thread failed") as caught:
        photos = write_sample_photos(tmp_path, 2)
        offline.decode_beside_forward(worker_ctx, resnet18, photos, precision, 4, breaking_net)
    assert isinstance(caught.value.__cause__, MemoryError)


def test_a_stuck_forward_ends_the_measurement_after_its_limit(worker_ctx, resnet18, tmp_path: Path) -> None:
    release = threading.Event()

    def stuck_net(threads: int):
        calls = []

        def forward(x: torch.Tensor):
            calls.append(1)
            if len(calls) > 1:  # the warm-up passes; then the forward waits until the test ends
                release.wait(30)
            return x, x

        return forward

    precision = Precision("fp32", "fp32", "cpu")
    try:
        with pytest.raises(TimeoutError, match="0 forward"):
            offline.decode_beside_forward(
                worker_ctx, resnet18, write_sample_photos(tmp_path, 2), precision, 4, stuck_net, max_seconds=1.0
            )
    finally:
        release.set()
