"""Every state change of jobs, images and chunks: the only writers of the jobs, images and artefacts tables.

Each transition is a conditional UPDATE (its WHERE names the states it may leave), so
concurrent callers are safe and a late duplicate never overwrites a finished row. Functions
take keyword arguments and run in the caller's transaction; reads stay in db.views/db.results.

    admission a tenant's limits checked under its lock, before its job is created
    jobs      create, finalize (completed/cancelled), cancel, fail, enqueue marks, withdraw, delete
    chunks    claim, write results, give up, release, requeue a stale chunk, cancel a chunk
    sweeps    the sweeper's pass over stuck work (uses jobs and chunks)
    webhooks  the completion-webhook outbox: claim a delivery, record its outcome
    training  training jobs: create, claim with a lease, heartbeat, progress, complete, fail, cancel
    training_sweeps  resend a training job whose lease lapsed or whose message never went out
    workers   worker heartbeats; requeue the chunks of a silent worker, hand back a stopping one's
    models    the model registry: register the next version, delete versions no active job uses
    artefacts exports and Grad-CAM maps: request once per cache key, mark sent, finish or fail, retry
"""

from imagebatch.db.lifecycle.admission import OverLimit, TenantLimits, admit_job, admit_training_job, lock_tenant
from imagebatch.db.lifecycle.artefacts import (
    fail_artefact,
    finish_artefact,
    mark_sent,
    request_artefact,
    retry_failed,
)
from imagebatch.db.lifecycle.chunks import (
    ClaimedImage,
    cancel_chunk,
    claim_chunk,
    fail_chunk,
    give_up_exhausted,
    release_claim,
    requeue_stale_chunk,
    write_chunk_results,
)
from imagebatch.db.lifecycle.jobs import (
    ImageSource,
    create_job,
    delete_job,
    fail_job,
    finalize_idle_jobs,
    finalize_job,
    mark_enqueued,
    record_reproducibility,
    renew_enqueued,
    request_cancel,
    unmark_enqueued,
    withdraw_job,
)
from imagebatch.db.lifecycle.models import NewModel, delete_model, register_model
from imagebatch.db.lifecycle.sweeps import ChunkSender, SweepReport, sweep
from imagebatch.db.lifecycle.training import (
    Claim,
    claim_training,
    complete_training,
    create_training_job,
    delete_training_job,
    fail_training,
    finish_training_cancel,
    mark_training_enqueued,
    record_training_progress,
    renew_training_lease,
    request_training_cancel,
)
from imagebatch.db.lifecycle.training_sweeps import TrainingSweep, sweep_training
from imagebatch.db.lifecycle.webhooks import claim_webhook, due_webhooks, record_webhook
from imagebatch.db.lifecycle.workers import beat, forget_dead_workers, requeue_dead_claims, retire_worker

__all__ = [
    "OverLimit",
    "TenantLimits",
    "admit_job",
    "admit_training_job",
    "lock_tenant",
    "ChunkSender",
    "Claim",
    "ClaimedImage",
    "ImageSource",
    "NewModel",
    "SweepReport",
    "TrainingSweep",
    "beat",
    "cancel_chunk",
    "fail_artefact",
    "finish_artefact",
    "mark_sent",
    "request_artefact",
    "retry_failed",
    "claim_chunk",
    "claim_training",
    "complete_training",
    "create_training_job",
    "delete_model",
    "delete_training_job",
    "fail_training",
    "finish_training_cancel",
    "mark_training_enqueued",
    "record_training_progress",
    "register_model",
    "renew_training_lease",
    "request_training_cancel",
    "sweep_training",
    "claim_webhook",
    "create_job",
    "delete_job",
    "due_webhooks",
    "fail_chunk",
    "fail_job",
    "finalize_idle_jobs",
    "finalize_job",
    "forget_dead_workers",
    "give_up_exhausted",
    "mark_enqueued",
    "record_reproducibility",
    "record_webhook",
    "release_claim",
    "renew_enqueued",
    "request_cancel",
    "requeue_dead_claims",
    "requeue_stale_chunk",
    "retire_worker",
    "sweep",
    "unmark_enqueued",
    "withdraw_job",
    "write_chunk_results",
]
