"""The worker context: built from settings, models loaded once on first use, found by the chunk task."""

import threading
from pathlib import Path

import pytest

from imagebatch.core.config import settings
from imagebatch.core.queueing import make_celery
from imagebatch.worker.context import WorkerContext, WorkerContextMissing
from imagebatch.worker.models import ModelUnavailable
from imagebatch.worker.prefetch import cpu_split


@pytest.fixture
def ctx(torch_home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))  # torch.hub reads it when a model loads
    ctx = WorkerContext.build(settings, device="cpu")
    yield ctx
    ctx.close()


def test_build_takes_its_resources_from_the_settings_and_loads_no_model(ctx: WorkerContext) -> None:
    assert (ctx.device, ctx.plan.device, ctx.plan.uint8_input) == ("cpu", "cpu", False)
    split = cpu_split("cpu", settings.WORKER_CONCURRENCY, settings.FORWARD_SLOTS, settings.TORCH_THREADS)
    assert ctx.split == split and ctx.gate.slots == split.forward_slots
    assert ctx.reader.pool is ctx.decode_pool and ctx.reader.fetcher is ctx.fetcher
    assert ctx.models.loaded() == []


def test_contexts_side_by_side_keep_their_own_metrics(ctx: WorkerContext) -> None:
    other = WorkerContext.build(settings, device="cpu")
    try:
        ctx.metrics.observe_gave_up(3)
        count = "imagebatch_worker_images_total"
        assert ctx.metrics.registry.get_sample_value(count, {"outcome": "failed"}) == 3
        assert other.metrics.registry.get_sample_value(count, {"outcome": "failed"}) is None  # never counted
    finally:
        other.close()


def test_threads_asking_at_once_share_one_load(ctx: WorkerContext) -> None:
    start, got = threading.Barrier(4), []

    def ask() -> None:
        start.wait()
        got.append(ctx.models.get("resnet18"))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(model is got[0] for model in got)
    assert got[0].device == "cpu" and got[0].plan == ctx.plan
    assert ctx.models.loaded() == ["resnet18"]  # only what was asked for


def test_unknown_model_is_unavailable_with_the_choices(ctx: WorkerContext) -> None:
    with pytest.raises(ModelUnavailable, match="unknown model 'resnet999': choose one of resnet18, resnet50"):
        ctx.models.get("resnet999")


def test_decoders_are_made_once_per_model_and_decode_mode(ctx: WorkerContext, resnet18) -> None:
    """Each job decodes in its own mode; the decoders are shared by every job in that mode."""
    fast, exact = ctx.decoder(resnet18, "fast"), ctx.decoder(resnet18, "exact")
    assert (fast.transform.draft_size, exact.transform.draft_size) == (256, None)
    assert ctx.decoder(resnet18, "fast") is fast and ctx.decoder(resnet18, "exact") is exact
    assert fast.renditions is exact.renditions is ctx.renditions
    with pytest.raises(ValueError, match="decode must be fast or exact"):
        ctx.decoder(resnet18, "sloppy")


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_the_setting_is_the_default_mode(monkeypatch, mode) -> None:
    monkeypatch.setattr(settings, "DECODE_MODE", mode)
    ctx = WorkerContext.build(settings, device="cpu")
    try:
        assert ctx.decode_mode == mode
    finally:
        ctx.close()


def test_the_chunk_task_finds_the_context_attached_to_its_app(ctx: WorkerContext) -> None:
    app = make_celery()
    with pytest.raises(WorkerContextMissing, match="imagebatch worker"):
        WorkerContext.of(app)
    assert WorkerContext.find(app) is None
    ctx.attach(app)
    assert WorkerContext.of(app) is ctx


def test_a_chunk_task_in_a_process_without_a_context_says_so() -> None:
    from imagebatch.worker.celery_app import app, process_chunk

    assert WorkerContext.find(app) is None  # nothing in this test process attaches one
    with pytest.raises(WorkerContextMissing, match="python -m imagebatch.worker"):
        process_chunk.run("job0000worker0000context00000000", 0, 4)
