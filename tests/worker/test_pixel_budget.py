"""The decode pixel budget: waits for room, lets an oversized image run alone, bounds a worker's decodes."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from torchvision.models import ResNet18_Weights

from imagebatch.core.config import settings
from imagebatch.worker.fetch import Fetcher
from imagebatch.worker.gpu import plan_for
from imagebatch.worker.preprocess import DecodedImage, PixelBudget
from imagebatch.worker.reader import Reader

SIDE = 4000  # a 16-megapixel grey PNG of a few kilobytes: its header, not its size on disk, tells the cost


def _held_while(budget: PixelBudget, pixels: int, started: threading.Event, release: threading.Event) -> None:
    with budget.hold(pixels):
        started.set()
        release.wait(5)


def test_a_decode_that_would_exceed_the_budget_waits_for_room():
    budget = PixelBudget(100)
    first_in, first_out = threading.Event(), threading.Event()
    holder = threading.Thread(target=_held_while, args=(budget, 60, first_in, first_out))
    holder.start()
    assert first_in.wait(5)
    second_in = threading.Event()
    waiter = threading.Thread(target=_held_while, args=(budget, 60, second_in, threading.Event()))
    waiter.start()
    assert not second_in.wait(0.3)  # 60 + 60 > 100: it waits
    assert budget.in_use == 60
    first_out.set()
    assert second_in.wait(5)  # room again: it runs
    holder.join()
    waiter.join()
    assert budget.in_use == 0 and budget.peak == 60


def test_an_image_larger_than_the_whole_budget_runs_alone():
    budget = PixelBudget(100)
    assert budget.acquire(10) == 10
    done = threading.Event()
    big = threading.Thread(target=lambda: (budget.release(budget.acquire(5_000)), done.set()))
    big.start()
    assert not done.wait(0.3)  # waits until nothing else is decoding
    budget.release(10)
    assert done.wait(5)
    big.join()
    assert budget.peak == 100 and budget.in_use == 0


def _decode_all(tmp_path: Path, capacity: int, images: int = 4) -> tuple[list, PixelBudget]:
    for i in range(images):
        Image.new("L", (SIDE, SIDE), color=40 * i).save(tmp_path / f"huge{i}.png")
    config = settings.model_copy(update={"ALLOWED_ROOTS": str(tmp_path)})
    budget = PixelBudget(capacity)
    decoder = plan_for("cpu").decoder(ResNet18_Weights.IMAGENET1K_V1.transforms(), budget=budget)
    with ThreadPoolExecutor(max_workers=images) as pool:
        reader = Reader(config, Fetcher(config), pool)
        began = time.perf_counter()
        decoded = reader.read_many([f"file:{tmp_path / f'huge{i}.png'}" for i in range(images)], decoder)
        print(f"budget {capacity / 1e6:.0f} MP: {images} x {SIDE}x{SIDE} decoded in {time.perf_counter() - began:.2f}s")
    return decoded, budget


def test_a_workers_decodes_of_huge_headers_run_one_at_a_time_within_the_budget(tmp_path):
    decoded, budget = _decode_all(tmp_path, capacity=20_000_000)
    assert all(isinstance(d, DecodedImage) for d in decoded), decoded
    assert [d.width for d in decoded] == [SIDE] * 4
    assert [round(d.mean[0]) for d in decoded] == [0, 40, 80, 120]  # each its own picture
    assert budget.peak == SIDE * SIDE  # four decode threads, never two of these pictures at once
    assert budget.in_use == 0


def test_a_budget_smaller_than_one_image_still_decodes_every_image(tmp_path):
    decoded, budget = _decode_all(tmp_path, capacity=1_000_000, images=2)
    assert all(isinstance(d, DecodedImage) for d in decoded), decoded
    assert budget.peak == 1_000_000 and budget.in_use == 0
