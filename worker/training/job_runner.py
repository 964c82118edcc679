"""A training job from claim to registered model: data, train() under a lease, epochs and checkpoints shared."""

import logging
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from imagebatch.core.config import settings
from imagebatch.core.storage import get_store
from imagebatch.core.training import TrainingOptions, model_prefix
from imagebatch.db import lifecycle
from imagebatch.db.lifecycle import Claim
from imagebatch.db.model_views import model_scores
from imagebatch.db.models import TrainingJob
from imagebatch.db.retry import retry_database
from imagebatch.db.session import session_scope
from imagebatch.worker.context import WorkerContext
from imagebatch.worker.models import ModelUnavailable
from imagebatch.worker.training import TrainingConfig, TrainingInputError, TrainingResult, prepare_dataset, train
from imagebatch.worker.training.calibration_sample import CALIBRATION_DIR
from imagebatch.worker.training.dataset import PreparedDataset
from imagebatch.worker.training.job_data import LocalData, fetch_training_data
from imagebatch.worker.training.job_epochs import EpochLog, SharedCheckpoint
from imagebatch.worker.training.job_lease import Lease
from imagebatch.worker.training.model import META_NAME, WEIGHTS_NAME

logger = logging.getLogger(__name__)

# Problems of the request or the data (the message says what to change): the job fails with it.
_USER_ERRORS = (TrainingInputError, ModelUnavailable, FloatingPointError)


@dataclass(frozen=True)
class _Job:
    id: str
    tenant: str | None
    name: str
    options: dict
    prefix: str
    epochs: list
    skipped: list | None


@retry_database
def _claim(job_id: str, token: str) -> tuple[Claim, _Job | None]:
    with session_scope() as session:
        claim = lifecycle.claim_training(
            session=session,
            job_id=job_id,
            claimed_by=token,
            lease=settings.TRAIN_LEASE,
            max_attempts=settings.TRAIN_MAX_ATTEMPTS,
        )
        if claim is not Claim.CLAIMED:
            return claim, None
        job = session.get(TrainingJob, job_id)
        if job is None:  # deleted right after the claim
            return Claim.GONE, None
        return claim, _Job(job.id, job.tenant, job.name, job.options, job.data_prefix, job.epochs or [], job.skipped)


def _write(job_id: str, token: str, **values: object) -> None:
    with session_scope() as session:
        lifecycle.record_training_progress(session=session, job_id=job_id, claimed_by=token, **values)


def _fail(job_id: str, token: str, message: str) -> None:
    logger.error("training job %s failed: %s", job_id, message)
    try:
        with session_scope() as session:
            lifecycle.fail_training(session=session, job_id=job_id, message=message, claimed_by=token)
    except Exception:  # the database may be why it failed; the lease lapses and a sweeper resends it
        logger.exception("training job %s: could not record its failure", job_id)


def run_training_job(ctx: WorkerContext, job_id: str) -> str:
    """Claim and run one training job; the outcome (completed, cancelled, failed, lost, or why not claimed)."""
    token = uuid.uuid4().hex  # one per run: a redelivered message never shares a live run's claim
    claim, job = _claim(job_id, token)
    if job is None:
        logger.info("training job %s: not run (%s)", job_id, claim.value)
        return claim.value
    try:
        with (
            Lease(job_id, token, settings.TRAIN_LEASE, settings.TRAIN_HEARTBEAT) as lease,
            tempfile.TemporaryDirectory(prefix="imagebatch-train-") as tmp,
        ):
            return _run(ctx, job, token, lease, Path(tmp))
    except _USER_ERRORS as exc:
        _fail(job_id, token, str(exc))
    except Exception as exc:
        logger.exception("training job %s: unexpected failure", job_id)
        _fail(job_id, token, f"{type(exc).__name__}: {exc}")
    return "failed"


def _dataset_report(dataset: PreparedDataset, local: LocalData, upload_skipped: list | None) -> dict:
    report = dataset.report.to_dict()
    report["skipped"] = local.skipped + report["skipped"]  # not fetched, then not decodable
    report["upload_skipped"] = upload_skipped or []  # archive members that were no images
    return report


def _run(ctx: WorkerContext, job: _Job, token: str, lease: Lease, tmp: Path) -> str:
    config = TrainingConfig.from_dict(TrainingOptions.model_validate(job.options).hyperparameters())
    local = fetch_training_data(ctx.reader, job.prefix, tmp / "data")
    dataset = prepare_dataset(local.root, config, val_source=local.val_root)
    _write(job.id, token, dataset=_dataset_report(dataset, local, job.skipped))
    checkpoint = SharedCheckpoint(job.prefix, tmp / "checkpoint")
    checkpoint.restore()
    log = EpochLog(job.epochs, config.epochs, lambda **values: _write(job.id, token, **values), checkpoint)
    result = train(
        dataset,
        config,
        output_dir=tmp / "model",
        checkpoint_dir=checkpoint.local,
        on_epoch=log.add,
        should_cancel=lease.should_stop,
    )
    if result.status == "completed" and _register(job, token, result):
        checkpoint.discard()
        return "completed"
    if lease.lost.is_set():
        return "lost"  # another worker holds the job now; it writes from here on
    with session_scope() as session:
        lifecycle.finish_training_cancel(session=session, job_id=job.id, claimed_by=token)
    checkpoint.discard()
    logger.info("training job %s cancelled after %d epoch(s); nothing registered", job.id, len(result.history))
    return "cancelled"


def _record(meta: dict) -> dict:
    """The training record shown with the job: everything but the per-epoch history and long file lists."""
    split = {k: v for k, v in meta["split"].items() if k != "val_files"}
    keys = ["hyperparameters", "seed", "preprocessing", "training_transforms", "base_weights", "optimizer"]
    keys += ["precision", "device", "torch_threads", "versions", "best_epoch", "stopped_early"]
    record = {key: meta.get(key) for key in keys}
    record.update(split=split, dataset_sha256=meta["dataset"]["sha256"], weights_sha256=meta["weights_sha256"])
    record["resumed_after_epochs"] = meta["resumed_after_epochs"]
    return record


class _Refused(Exception):
    """The job stopped being this run's to complete (cancelled meanwhile): roll the registration back."""


def _register(job: _Job, token: str, result: TrainingResult) -> int | None:
    """Upload the model's files, then register the next version and complete the job in one transaction."""
    store, meta, model_dir = get_store(), result.meta, result.model_dir
    if meta is None or model_dir is None:  # train() returns both with every completed result
        raise ValueError("a completed training result has no model files to register")
    # Per run: files of a run that lost its claim never overwrite (or, refused, delete) the winner's.
    prefix = model_prefix(job.tenant, job.name, f"{job.id}-{token[:12]}")
    calibration = [f"{CALIBRATION_DIR}/{name}" for name in meta.get("calibration", {}).get("files", [])]
    for name in (WEIGHTS_NAME, META_NAME, *calibration):
        with open(model_dir / name, "rb") as f:
            store.write_stream(f"{prefix}{name}", f)
    stored_meta = {**meta, "split": {k: v for k, v in meta["split"].items() if k != "val_files"}}
    model = lifecycle.NewModel(
        name=job.name,
        base_model=meta["base_model"],
        mode=meta["mode"],
        classes=meta["classes"],
        metrics=model_scores(meta),
        weights_sha256=meta["weights_sha256"],
        weights_key=f"{prefix}{WEIGHTS_NAME}",
        meta=stored_meta,
        training_job_id=job.id,
    )
    best = {"epoch": result.best_epoch, "val_accuracy": meta["best"]["val_accuracy"]}
    try:
        with session_scope() as session:
            version = lifecycle.register_model(session=session, tenant=job.tenant, model=model)
            done = lifecycle.complete_training(
                session=session,
                job_id=job.id,
                claimed_by=token,
                model_version=version,
                epochs=result.history,
                best=best,
                record=_record(meta),
            )
            if not done:
                raise _Refused
    except _Refused:
        store.delete_prefix(prefix)
        return None
    logger.info("training job %s registered %s:%d (val accuracy %.4f)", job.id, job.name, version, best["val_accuracy"])
    return version
