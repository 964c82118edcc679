"""The chunk plan: which images each chunk task holds, its priority, and its broker message."""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from celery import Celery

from imagebatch.core.queueing import PRIORITY_LEVELS, PROCESS_CHUNK_TASK, queue_for_model

logger = logging.getLogger(__name__)

CHUNKS_PER_PRIORITY = 4
# A chunk sent again (its claim went stale, or its message was lost) has waited already: it goes first.
RESENT_PRIORITY = 0


@dataclass(frozen=True)
class Chunk:
    """One chunk task: images [start, stop) of a job, sent to its model's queue at `priority`."""

    job_id: str
    model: str
    start: int
    stop: int
    priority: int = 0


@dataclass(frozen=True)
class ChunkMessage:
    """What goes to the broker for a chunk: the task by name (the API never imports worker code)."""

    task: str
    args: list
    queue: str
    priority: int


def chunk_bounds(total: int, chunk_size: int) -> list[tuple[int, int]]:
    """Half-open [start, stop) image index ranges, one per chunk task, covering 0..total-1 once."""
    return [(start, min(start + chunk_size, total)) for start in range(0, total, chunk_size)]


def chunk_holding(idx: int, total: int, chunk_size: int) -> tuple[int, int]:
    """The [start, stop) of the chunk that holds image `idx`, as chunk_bounds() cut it."""
    start = idx - idx % chunk_size
    return start, min(start + chunk_size, total)


def chunk_priority(chunk_index: int) -> int:
    """Fair scheduling: a job's first chunks go ahead of a long job's later ones.

    With Redis, priority 0 is consumed first. A job's chunks 0-3 get priority 0, 4-7 get 1, ...,
    36 onwards 9, so a small job submitted while a big one runs waits only for the chunks
    workers already hold (and the big job's first few), then interleaves with it. Priority 0
    is the plain queue list, so small jobs' messages sit where they always did. The embedded
    SQLite broker ignores priorities (FIFO).
    """
    return min(max(chunk_index, 0) // CHUNKS_PER_PRIORITY, PRIORITY_LEVELS - 1)


def job_chunks(job_id: str, model: str, total: int, chunk_size: int) -> list[Chunk]:
    """Every chunk of a job, in order, each at its fair-scheduling priority: the first send."""
    return [
        Chunk(job_id, model, start, stop, chunk_priority(index))
        for index, (start, stop) in enumerate(chunk_bounds(total, chunk_size))
    ]


def resent_chunks(job_id: str, model: str, total: int, chunk_size: int, indexes: Iterable[int]) -> list[Chunk]:
    """The chunks holding images `indexes`, once each and in order, to be sent again first in line."""
    bounds = sorted({chunk_holding(idx, total, chunk_size) for idx in indexes})
    return [Chunk(job_id, model, start, stop, RESENT_PRIORITY) for start, stop in bounds]


def chunk_message(chunk: Chunk) -> ChunkMessage:
    return ChunkMessage(
        task=PROCESS_CHUNK_TASK,
        args=[chunk.job_id, chunk.start, chunk.stop],
        queue=queue_for_model(chunk.model),
        priority=chunk.priority,
    )


def send_chunks(app: Celery, chunks: Sequence[Chunk]) -> int:
    """Send the chunks' messages by task name; returns how many were sent.

    One producer (one broker connection) for all of them, and on Redis one pipeline: kombu's
    publish batch sends them in round trips of up to 1,000 (other brokers: one by one). A
    failure inside the batch discards what was not sent and raises, as a single send would.
    """
    if not chunks:
        return 0
    with app.producer_or_acquire() as producer, producer.batch():
        for chunk in chunks:
            message = chunk_message(chunk)
            app.send_task(
                message.task, args=message.args, queue=message.queue, priority=message.priority, producer=producer
            )
    logger.debug("sent %d chunk message(s)", len(chunks))
    return len(chunks)
