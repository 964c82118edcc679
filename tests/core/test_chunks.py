"""The chunk plan: bounds cover every image once, the chunk holding an index, priorities, messages on the broker."""

import json

import pytest
import redis

from imagebatch.core.chunks import (
    Chunk,
    chunk_bounds,
    chunk_holding,
    chunk_message,
    chunk_priority,
    job_chunks,
    resent_chunks,
    send_chunks,
)
from imagebatch.core.config import Settings
from imagebatch.core.queueing import PROCESS_CHUNK_TASK, make_celery, queue_for_model
from tests.harness.services import private_redis

REDIS_DB = 10  # this test area's own Redis database


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 32])
def test_bounds_cover_every_index_exactly_once_and_the_holding_chunk_agrees(chunk_size):
    for total in range(0, 70):
        bounds = chunk_bounds(total, chunk_size)
        covered = [idx for start, stop in bounds for idx in range(start, stop)]
        assert covered == list(range(total))
        assert all(0 < stop - start <= chunk_size for start, stop in bounds)
        assert all(chunk_holding(idx, total, chunk_size) in bounds for idx in range(total))
        assert [(c.start, c.stop) for c in job_chunks("j", "resnet18", total, chunk_size)] == bounds


def test_a_jobs_first_chunks_go_first_and_later_ones_fall_to_the_lowest_priority():
    assert [chunk_priority(i) for i in range(10)] == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert chunk_priority(35) == 8 and chunk_priority(36) == 9 and chunk_priority(10_000) == 9
    assert chunk_priority(-1) == 0
    assert [c.priority for c in job_chunks("j", "resnet18", 40, 4)] == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]


def test_chunks_sent_again_are_each_sent_once_and_first_in_line():
    chunks = resent_chunks("j", "resnet50", 10, 4, [9, 1, 2, 8, 0])
    assert chunks == [Chunk("j", "resnet50", 0, 4, 0), Chunk("j", "resnet50", 8, 10, 0)]
    assert resent_chunks("j", "resnet50", 10, 4, []) == []


def test_a_chunk_message_names_the_task_its_images_and_its_models_queue():
    message = chunk_message(Chunk("job1", "resnet50", 8, 12, 2))
    assert (message.task, message.args, message.queue, message.priority) == (
        "imagebatch.process_chunk",
        ["job1", 8, 12],
        "imagebatch.resnet50",
        2,
    )


def test_a_batch_of_chunk_messages_reaches_redis_on_each_priority_list():
    with private_redis(REDIS_DB) as url:
        app = make_celery(Settings(REDIS_URL=url))
        chunks = job_chunks("job1", "resnet18", 22, 4)  # six chunks: priorities 0, 0, 0, 0, 1, 1
        assert send_chunks(app, chunks) == 6 and send_chunks(app, []) == 0
        broker = redis.Redis.from_url(url)
        queue = queue_for_model("resnet18")
        # kombu keeps one list per priority: the queue itself for 0, "<queue>\x06\x16<n>" for n.
        lists = {0: queue, 1: f"{queue}\x06\x161"}
        found = {}
        for priority, key in lists.items():
            for raw in reversed(broker.lrange(key, 0, -1)):  # kombu LPUSHes: the tail is the oldest
                message = json.loads(raw)
                assert message["headers"]["task"] == PROCESS_CHUNK_TASK
                assert message["properties"]["priority"] == priority
                found.setdefault(priority, []).append(message["headers"]["argsrepr"])
        broker.close()
        app.close()
    assert found == {
        0: ["['job1', 0, 4]", "['job1', 4, 8]", "['job1', 8, 12]", "['job1', 12, 16]"],
        1: ["['job1', 16, 20]", "['job1', 20, 22]"],
    }
