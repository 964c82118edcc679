"""The forward gate: at most its slots' worth of forwards however many chunks are in flight, waits
counted; and the automatic split of cores between forward slots and torch threads."""

import threading
import time

import pytest

from imagebatch.worker.prefetch import CpuSplit, ForwardGate, cpu_split
from tests.harness.occupancy import Occupancy


def test_forwards_never_overlap_and_waiters_are_counted() -> None:
    gate = ForwardGate()
    inside, overlaps, order = [0], [], []
    start = threading.Barrier(4)

    def chunk(n: int) -> None:
        start.wait()
        with gate.turn() as waited:
            inside[0] += 1
            overlaps.append(inside[0])
            order.append(n)
            time.sleep(0.05)
            inside[0] -= 1
        assert waited >= 0

    threads = [threading.Thread(target=chunk, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(overlaps) == 1 and gate.stats.max_inside == 1
    assert gate.stats.turns == 4 and sorted(order) == [0, 1, 2, 3]
    assert gate.stats.max_waiting >= 2  # the others queued while one ran
    assert gate.stats.waiting == 0
    # Three of four waited for at least one 50 ms forward each.
    assert gate.stats.wait_seconds >= 0.05 * 3
    assert gate.stats.busy_seconds >= 0.05 * 4


def test_a_failing_forward_releases_the_gate() -> None:
    gate = ForwardGate()
    try:
        with gate.turn():
            raise RuntimeError("forward blew up")
    except RuntimeError:
        pass
    acquired = threading.Event()

    def other() -> None:
        with gate.turn():
            acquired.set()

    t = threading.Thread(target=other)
    t.start()
    t.join(timeout=5)
    assert acquired.is_set()
    assert gate.stats.turns == 2


def test_a_gate_with_two_slots_lets_two_forwards_run_at_once() -> None:
    gate = ForwardGate(slots=2)
    occupancy, start = Occupancy(), threading.Barrier(4)

    def chunk() -> None:
        start.wait()
        with gate.turn():
            occupancy.stay(0.1)

    threads = [threading.Thread(target=chunk) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert occupancy.peak == 2 and gate.stats.max_inside == 2  # two at once, never three
    assert gate.stats.turns == 4 and gate.stats.waiting == 0


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        ForwardGate(slots=0)


@pytest.mark.parametrize(
    ("device", "concurrency", "slots", "threads", "cores", "expected"),
    [
        ("cpu", 2, 0, 0, 2, CpuSplit(forward_slots=2, torch_threads=1)),  # one forward per core
        ("cpu", 2, 0, 0, 8, CpuSplit(forward_slots=2, torch_threads=4)),
        ("cpu", 3, 0, 0, 8, CpuSplit(forward_slots=3, torch_threads=2)),
        ("cpu", 3, 0, 0, 2, CpuSplit(forward_slots=2, torch_threads=1)),  # the third chunk decodes ahead
        ("cpu", 2, 1, 0, 2, CpuSplit(forward_slots=1, torch_threads=2)),  # take turns on every core
        ("cpu", 1, 4, 0, 8, CpuSplit(forward_slots=1, torch_threads=8)),  # slots capped by chunks in flight
        ("cpu", 4, 4, 3, 2, CpuSplit(forward_slots=4, torch_threads=3)),  # explicit settings kept
        ("cuda", 2, 0, 0, 8, CpuSplit(forward_slots=1, torch_threads=8)),  # a GPU runs one batch at a time
        ("cuda", 2, 2, 0, 8, CpuSplit(forward_slots=2, torch_threads=4)),
    ],
)
def test_cpu_split_fills_in_the_automatic_settings(device, concurrency, slots, threads, cores, expected) -> None:
    assert cpu_split(device, concurrency, slots, threads, cores=cores) == expected
