"""A chunk's pipeline: claim rows -> read (threads) -> infer (one forward, in turn) -> write -> finalize."""

import logging
import os
import platform
import threading
import time
import uuid
from dataclasses import asdict, dataclass

import PIL
import torch
import torchvision

from imagebatch.core.config import settings
from imagebatch.core.options import JobOptions
from imagebatch.db import lifecycle, registry
from imagebatch.db.lifecycle import ClaimedImage
from imagebatch.db.models import Job, utcnow
from imagebatch.db.retry import retry_database
from imagebatch.db.session import session_scope
from imagebatch.worker import writer
from imagebatch.worker.context import WorkerContext
from imagebatch.worker.custom_models import RegisteredWeights
from imagebatch.worker.devices import Precision, resolve_precision
from imagebatch.worker.inference import ImageResult, infer
from imagebatch.worker.int8_models import Int8Served
from imagebatch.worker.liveness import WorkerStopping
from imagebatch.worker.models import LoadedModel, ModelUnavailable
from imagebatch.worker.preprocess import DecodedImage, ImageFailure
from imagebatch.worker.timing import ChunkReport, timing_line

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A chunk's images, now running for this delivery, and what the job asks for."""

    images: list[ClaimedImage]
    options: JobOptions
    chunk_size: int
    decode_mode: str | None  # resolved at submission; None for a job stored before that


@retry_database
def claim(job_id: str, start: int, stop: int, token: str, worker: str | None = None) -> Claim | None:
    """The chunk's open images, now running for `token` in worker process `worker`, with the job's
    options; None: nothing to do."""
    with session_scope() as session:
        # A chunk this delivery claimed CHUNK_MAX_ATTEMPTS times already (its workers died) is given up.
        lifecycle.give_up_exhausted(
            session=session,
            job_id=job_id,
            start=start,
            stop=stop,
            claimed_by=token,
            max_attempts=settings.CHUNK_MAX_ATTEMPTS,
        )
        claimed = lifecycle.claim_chunk(
            session=session, job_id=job_id, start=start, stop=stop, claimed_by=token, worker=worker
        )
        if not claimed:
            return None
        job = session.get(Job, job_id)
        assert job is not None  # the claim matched rows of this job, still active
        # Read back as stored: submission validated them (a callback host is not resolved again).
        return Claim(claimed, JobOptions.from_record(job), job.chunk_size, job.decode_mode)


class ModelDeleted(Exception):
    """A custom model's job whose version was deleted from the registry before the job ran."""


@retry_database
def custom_weights(job_id: str) -> RegisteredWeights | None:
    """The registered custom model a job was resolved to, or None for a built-in model's job."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.custom_model is None:
            return None
        entry = registry.model_of_job(session, job)
        if entry is None:
            raise ModelDeleted(f"custom model {job.custom_model}:{job.model_version} was deleted")
        return RegisteredWeights(entry.name, entry.version, entry.base_model, entry.weights_key, entry.weights_sha256)


def _model_record(model: LoadedModel) -> dict:
    """Which weights: torchvision's for a built-in model; a custom model's name, version, file hash and classes."""
    record = {
        "model": model.spec.name,
        "weights": model.weights_name,
        "weights_file": model.spec.weights_file,
        "weights_sha256": model.weights_sha256,
        "num_classes": len(model.labels),
        "embedding_dim": model.spec.embedding_dim,
    }
    if model.custom:
        name, _, version = model.custom.rpartition(":")
        record.update(
            custom_model=name,
            model_version=int(version),
            base_model=model.spec.name,
            weights_file=str(model.weights_path),
            classes=list(model.labels),
        )
    return record


def reproducibility_record(
    ctx: WorkerContext,
    model: LoadedModel,
    precision: Precision,
    chunk_size: int,
    decode: str,
    requested: str | None,
    int8: Int8Served | None = None,
) -> dict:
    """Everything needed to tell whether two jobs' numbers are comparable (`requested`: the decode option;
    `int8`: the quantized model an int8 job ran, whose engine and calibration set are named)."""
    if precision.device_type == "cuda":
        device_name = torch.cuda.get_device_name(model.device)
    else:
        device_name = platform.processor() or platform.machine()
    return {
        **_model_record(model),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "transforms": repr(model.transform),
        "precision": precision.resolved,
        "precision_requested": precision.requested,
        "precision_note": precision.note,
        "device": model.device,
        "device_name": device_name,
        "embedding_dtype": ctx.settings.EMBEDDING_DTYPE,
        "batch_size": chunk_size,
        "chunk_size": chunk_size,
        "decode": decode,
        "decode_requested": requested,
        "batchnorm_folded": True,  # fp32/bf16/fp16 by fold_batchnorm; the int8 engines in their own conversion
        **(int8.record() if int8 else {}),
    }


def build_rows(
    claimed: list[ClaimedImage],
    decoded: list[DecodedImage | ImageFailure],
    results: list[ImageResult],
    embedding_dtype: str,
    renditions: dict[int, dict] | None = None,
) -> list[dict]:
    """One update dict per claimed image; results are in the order of the decoded successes
    (`renditions`: store_renditions' references by image id)."""
    now = utcnow()
    good = iter(results)
    refs = renditions or {}
    rows = []
    for image, outcome in zip(claimed, decoded, strict=True):
        if isinstance(outcome, ImageFailure):
            rows.append(writer.failure_row(image.id, outcome, now))
        else:
            rows.append(writer.ok_row(image.id, outcome, next(good), embedding_dtype, now, refs.get(image.id)))
    return rows


def _fail(job_id: str, message: str) -> None:
    logger.error("job %s cannot run: %s", job_id, message)
    with session_scope() as session:
        lifecycle.fail_job(session=session, job_id=job_id, message=message)


def _log_chunk(job_id: str, start: int, stop: int, n: int, report: ChunkReport, precision: str) -> None:
    logger.info(
        "job %s chunk [%d, %d): %d ok, %d failed; read %.3fs, wait %.3fs, forward %.3fs (%s), write %.3fs",
        job_id,
        start,
        stop,
        report.succeeded,
        report.failed,
        report.read_seconds,
        report.wait_seconds,
        report.forward_seconds,
        precision,
        report.write_seconds,
    )
    # One parseable line per chunk: the benchmark derives the time split and per-chunk overhead from it.
    timing = {
        "job": job_id,
        "start": start,
        "n": n,
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "ended": time.time(),
        **asdict(report),
    }
    logger.info("%s", timing_line(timing))


def _unless_stopping(ctx: WorkerContext) -> None:
    if ctx.stopping.is_set():
        raise WorkerStopping


def _run(ctx: WorkerContext, job_id: str, start: int, stop: int, chunk: Claim) -> ChunkReport | None:
    claimed, options = chunk.images, chunk.options
    # A job stored before the API resolved its mode gets the same rule here, with this worker's setting.
    decode = chunk.decode_mode or options.resolve_decode(ctx.decode_mode)
    try:
        model = ctx.model_for(options.model, custom_weights(job_id))
        precision = resolve_precision(options.precision, model.device, ctx.capabilities)
        decoder = ctx.decoder(model, decode)
        # Quantized on the first int8 chunk of this model in this process (loaded from disk when cached).
        int8 = ctx.int8.get(model) if precision.resolved == "int8" else None
    except (ModelUnavailable, ModelDeleted, ValueError) as exc:
        _fail(job_id, str(exc))
        return None
    began, t0 = time.time(), time.perf_counter()
    _unless_stopping(ctx)
    decoded = ctx.reader.read_many([image.location for image in claimed], decoder)
    renditions = writer.store_renditions(job_id, start, claimed, decoded)
    t1 = time.perf_counter()
    tensors = [d.tensor for d in decoded if isinstance(d, DecodedImage)]
    # Another chunk of this process may be in its forward: decoding ran alongside it, the forward waits.
    with ctx.gate.turn() as waited:
        _unless_stopping(ctx)  # a shutdown that began while this chunk waited for its forward
        t2 = time.perf_counter()
        results = infer(
            model, tensors, precision, options.top_k, options.store_probabilities, int8.model if int8 else None
        )
    t3 = time.perf_counter()
    retry_database(writer.commit_chunk)(
        job_id,
        build_rows(claimed, decoded, results, ctx.settings.EMBEDDING_DTYPE, renditions),
        weights_name=model.weights_name,
        labels=model.labels,
        reproducibility=reproducibility_record(ctx, model, precision, chunk.chunk_size, decode, options.decode, int8),
        stored=len(renditions),
    )
    report = ChunkReport(
        len(results), len(claimed) - len(results), t1 - t0, t3 - t2, time.perf_counter() - t3, waited, began
    )
    _log_chunk(job_id, start, stop, len(claimed), report, precision.resolved)
    return report


def process_chunk(
    ctx: WorkerContext, job_id: str, start: int, stop: int, token: str | None = None
) -> ChunkReport | None:
    """Run one chunk task with the worker's resources; known fatal problems fail the job instead of raising.

    `token` names the delivery (the Celery task id): a redelivery of the same message takes
    back the rows it left running, a duplicate message finds them held. None: a fresh one.
    """
    token = token or uuid.uuid4().hex
    chunk = claim(job_id, start, stop, token, ctx.worker_id)
    if chunk is None:
        logger.info("job %s chunk [%d, %d): nothing to do", job_id, start, stop)
        retry_database(writer.finalize)(job_id)
        return None
    try:
        return _run(ctx, job_id, start, stop, chunk)
    except WorkerStopping:
        # The rows stay claimed by this worker until it shuts down: worker.liveness.hand_back
        # releases them all and sends their chunks again, in one transaction.
        logger.warning("job %s chunk [%d, %d): worker shutting down; handing it back", job_id, start, stop)
        return None
    except Exception:
        # The task's retries govern errors this worker saw; attempts count only vanished claims.
        writer.release_claim(job_id, start, stop, token)
        raise
