"""Reconnect to the broker when a chunk's acknowledgement was lost with the connection.

A chunk is acknowledged after its commit (acks_late). When the broker has gone away by then,
Celery logs "Couldn't ack" and moves on, but kombu still counts the message as held. Once every
prefetch slot is held that way the consumer stops reading from the broker, so it never touches
the dead connection, never reconnects, and the worker idles forever beside a full queue (seen
with Redis restarted while both chunks in flight finished).

WatchedRequest hears of each lost acknowledgement from the ack itself; BrokerWatch, a timer in
the consumer's own loop, then raises a connection error there, which Celery answers as it
answers any broken connection: it reconnects, its new channel starts with free slots, and it
consumes again. The messages left unacknowledged come back once their visibility timeout
passes, claim no rows and finish at once ("nothing to do").
"""

import logging
import threading
from typing import Any

from celery import bootsteps
from celery.worker.consumer import Consumer
from celery.worker.request import Request
from kombu.asynchronous.timer import Entry

logger = logging.getLogger(__name__)
_celery_request_logger = logging.getLogger("celery.worker.request")

CHECK_SECONDS = 1.0


class LostAcks:
    """The channels on which an acknowledgement failed (reported from wherever the ack ran)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: list[object] = []

    def report(self, channel: object) -> None:
        with self._lock:
            self._channels.append(channel)

    def take(self) -> list[object]:
        with self._lock:
            channels, self._channels = self._channels, []
        return channels


# Process-wide on purpose, unlike the worker context: Celery itself makes both ends (WatchedRequest
# from ChunkTask.Request's class path, BrokerWatch as a consumer bootstep), and a process has one
# consumer connection whose lost acknowledgements they share.
lost_acks = LostAcks()


class _AckLogger:
    """The logger handed to kombu's ack_log_error: its critical() is the "Couldn't ack" report.

    Celery schedules the acknowledgement on the consumer's event loop, so only the ack itself
    knows whether it reached the broker; kombu tells its logger when it did not.
    """

    def __init__(self, channel: object) -> None:
        self.channel = channel

    def critical(self, msg: str, *args: object, **kwargs: Any) -> None:
        lost_acks.report(self.channel)
        _celery_request_logger.critical(msg, *args, **kwargs)  # where Celery itself logs it


class WatchedRequest(Request):
    """Celery's request, whose acknowledgement reports a failure to BrokerWatch."""

    acknowledged: bool  # Request's own flag (celery ships no type information)

    def acknowledge(self) -> None:
        if not self.acknowledged:
            self.on_ack(_AckLogger(self.message.channel), self.connection_errors)
            self.acknowledged = True


class BrokerWatch(bootsteps.StartStopStep):
    """Turn a lost acknowledgement on the consumer's current channel into a reconnect."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Consumer, **kwargs: object) -> None:
        super().__init__(parent, **kwargs)
        self.timer_entry: Entry | None = None

    def include_if(self, parent: Consumer) -> bool:
        # The consumer treats only its transport's connection errors as a broken connection.
        return issubclass(ConnectionResetError, parent.connection_errors)

    def start(self, c: Consumer) -> None:
        self.timer_entry = c.timer.call_repeatedly(CHECK_SECONDS, self.check, (c,), priority=10)

    def stop(self, c: Consumer) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def check(self, c: Consumer) -> None:
        current = c.task_consumer.channel if c.task_consumer is not None else None
        # A late ack of a chunk that outlived an earlier reconnect fails on the old channel:
        # nothing to mend there, and reconnecting again would only fail the next acks.
        if current is not None and any(channel is current for channel in lost_acks.take()):
            logger.warning("a chunk's acknowledgement was lost with the broker connection; reconnecting")
            raise ConnectionResetError("acknowledgement lost with the broker connection")
