"""The forward gate: one forward at a time however many chunks are in flight, waits counted."""

import threading
import time

from worker.prefetch import ForwardGate


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
