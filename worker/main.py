"""Start a worker process: check weights, load the default model, then consume model and training queues."""

import argparse
import logging
import os
import socket

import torch
from celery import bootsteps, signals
from celery.worker import WorkController, state
from celery.worker.consumer import Consumer
from kombu.asynchronous.timer import Entry

from imagebatch.core.config import Settings, settings
from imagebatch.core.logging import configure_logging
from imagebatch.core.queueing import QUEUE_KINDS, TRAIN_QUEUE, queue_for_model
from imagebatch.core.results import check_embedding_dtype
from imagebatch.worker.broker_watch import BrokerWatch
from imagebatch.worker.celery_app import app
from imagebatch.worker.context import WorkerContext
from imagebatch.worker.liveness import Heartbeat, hand_back
from imagebatch.worker.metrics import WorkerMetrics, start_metrics_server
from imagebatch.worker.models import ModelUnavailable, ensure_weights, get_spec
from imagebatch.worker.sweeper import queued_messages, start_sweeper

logger = logging.getLogger(__name__)

_BURST_CHECK_SECONDS = 1.0


class BurstStep(bootsteps.StartStopStep):
    """Stop the worker (warm) once its queues are empty and it holds no task: rq's burst mode."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Consumer, **kwargs: object) -> None:
        super().__init__(parent, **kwargs)
        self.idle_checks = 0
        self.timer_entry: Entry | None = None

    def start(self, c: Consumer) -> None:
        self.timer_entry = c.timer.call_repeatedly(_BURST_CHECK_SECONDS, self.check, (c,), priority=10)

    def stop(self, c: Consumer) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()

    def check(self, c: Consumer) -> None:
        busy = state.active_requests or state.reserved_requests or state.scheduled_requests
        waiting = 0 if busy else queued_messages(c.app, [q.name for q in c.task_consumer.queues])
        # Two idle checks in a row: a message fetched but not yet registered cannot slip through.
        self.idle_checks = 0 if busy or waiting else self.idle_checks + 1
        if self.idle_checks >= 2:
            logger.info("burst mode: queues empty, stopping")
            state.should_stop = 0  # EX_OK; the consumer loop turns this into a warm shutdown


def prepare(models: list[str], metrics: WorkerMetrics, kinds: tuple[str, ...] = QUEUE_KINDS) -> WorkerContext:
    """The worker's context, once everything holds that must before consuming.

    Raises ModelUnavailable/ValueError with a fix: a bad setting now rather than on every chunk.
    """
    check_embedding_dtype(settings.EMBEDDING_DTYPE)
    ctx = WorkerContext.build(settings, metrics=metrics)
    classify = "classify" in kinds
    for name in models if classify else ():
        ensure_weights(get_spec(name))
    # torch's intra-op thread pool belongs to the process, whatever holds the context: set it once, here.
    # A training-only worker shares the cores among its training slots as a classifier among its forwards.
    threads = ctx.split.torch_threads if classify else training_threads(settings)
    torch.set_num_threads(threads)
    logger.info(
        "%d task(s) in flight, %d forward(s) at once, %d torch thread(s) each",
        _concurrency(kinds),
        ctx.split.forward_slots,
        threads,
    )
    if classify:
        default = settings.DEFAULT_MODEL if settings.DEFAULT_MODEL in models else models[0]
        ctx.models.get(default)  # eagerly, so the first chunk does not pay for it; others load on first use
    return ctx


def training_threads(config: Settings) -> int:
    return config.TORCH_THREADS or max(1, (os.cpu_count() or 1) // config.TRAIN_SLOTS)


def _concurrency(kinds: tuple[str, ...]) -> int:
    """Tasks in flight: WORKER_CONCURRENCY with classification, else one per training slot."""
    return settings.WORKER_CONCURRENCY if "classify" in kinds else settings.TRAIN_SLOTS


def queue_names(models: list[str], kinds: tuple[str, ...]) -> list[str]:
    """The broker queues of a worker: its models' (classify) and the training queue (train)."""
    unknown = sorted(set(kinds) - set(QUEUE_KINDS))
    if unknown or not kinds:
        raise ValueError(f"--queues takes {' and/or '.join(QUEUE_KINDS)} (got {', '.join(unknown) or 'nothing'})")
    return ([queue_for_model(m) for m in models] if "classify" in kinds else []) + (
        [TRAIN_QUEUE] if "train" in kinds else []
    )


def _celery_worker(queues: list[str], loglevel: str, concurrency: int) -> WorkController:
    # Several chunks in flight (threads pool) let the next chunk decode while one runs forward;
    # worker.prefetch decides how many forwards run at once. One in flight keeps the plain solo pool.
    return app.Worker(
        hostname=f"imagebatch-{os.getpid()}@{socket.gethostname()}",
        pool_cls="threads" if concurrency > 1 else "solo",
        concurrency=concurrency,
        queues=queues,
        loglevel=loglevel.upper(),
        quiet=True,
        without_gossip=True,
        without_mingle=True,
        # Flower needs heartbeats (worker online) and task events; off by default (the
        # embedded SQLite broker has no fanout exchange for them).
        without_heartbeat=not settings.WORKER_EVENTS,
        task_events=settings.WORKER_EVENTS,
    )


def run_worker(
    models: list[str] | None = None, loglevel: str = "INFO", burst: bool = False, queues: list[str] | None = None
) -> int:
    """Consume the queues of `models` (default settings.worker_models) and/or the training queue
    (`queues`: classify, train; default settings.worker_queues) until stopped; the exit code.

    Exits at once (SystemExit with one line) when a served model cannot run here.
    Threads (or solo) pool: one process, never forked after CUDA is touched; run one worker
    process per GPU (CUDA_VISIBLE_DEVICES=<n>).
    """
    configure_logging(loglevel)
    models = list(models or settings.worker_models)
    kinds = tuple(queues or settings.worker_queues)
    try:
        names = queue_names(models, kinds)
    except ValueError as exc:
        raise SystemExit(f"imagebatch worker: {exc}") from None
    if "classify" in kinds and not models:
        raise SystemExit("imagebatch worker: no models to serve (set IMAGEBATCH_WORKER_MODELS)")
    # Before loading models, so a scrape tells "starting" from "down".
    metrics = WorkerMetrics()
    start_metrics_server(settings.WORKER_METRICS_PORT, registry=metrics.registry)
    try:
        ctx = prepare(models, metrics, kinds)
    except (ModelUnavailable, ValueError) as exc:
        raise SystemExit(f"imagebatch worker: {exc}") from None
    ctx.attach(app)  # the chunk task finds it there
    app.steps["consumer"].add(BrokerWatch)
    if burst:
        app.steps["consumer"].add(BurstStep)
    if settings.is_embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the SQLite broker's file lives there
    logger.info("worker serving %s on %s, consuming %s", ", ".join(models), ctx.device, ", ".join(names))
    worker = _celery_worker(names, loglevel, _concurrency(kinds))
    heartbeat = Heartbeat(ctx.worker_id, settings.WORKER_HEARTBEAT)
    heartbeat.start()
    start_sweeper(app)
    # SIGTERM (a warm shutdown) stops the chunks in flight at their next step rather than after their forward.
    signals.worker_shutting_down.connect(lambda **_: ctx.stopping.set(), weak=False)
    try:
        worker.start()
    finally:
        ctx.stopping.set()
        heartbeat.stop()  # first, so no beat brings back the row hand_back deletes
        try:
            hand_back(app, ctx.worker_id)
        except Exception:  # the database or broker is away: the sweepers requeue the rows of a silent worker
            logger.exception("could not hand back this worker's unfinished chunks")
        ctx.close()
    return worker.exitcode or 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagebatch.worker", description="Run an imagebatch worker.")
    parser.add_argument("--models", help="comma-separated models to serve (default IMAGEBATCH_WORKER_MODELS)")
    parser.add_argument("--loglevel", default=settings.LOG_LEVEL)
    parser.add_argument("--queues", help="classify, train or both (default IMAGEBATCH_WORKER_QUEUES)")
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    return run_worker(models, loglevel=args.loglevel, burst=args.burst, queues=queues)
