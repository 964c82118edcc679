"""Test helper run in a fresh process (settings come from its environment): set up a job, run it.

Usage: python chunk_driver.py SPEC.json; prints one JSON line. Spec keys:
  job_id, images [[source, location]...], model, top_k, store_probabilities, precision, decode
  (the option as submitted: the worker resolves it, as for a job stored before the API did),
  chunk_size, action: "process" (run every chunk via worker.runner with a worker context built
  from this process's settings), "enqueue" (send the chunk tasks by name, as the API does),
  "fail_chunk" (claim chunk 0, then give up on it as the task's last retry would, with a context
  attached to the Celery app), "none" (only create the job); cancel_first: cancel the job
  before acting; delete_during: delete the job as the API does (rows, then stored blobs) while
  its chunk runs, just before the chunk stores its thumbnails.
"""

import json
import sys
from pathlib import Path


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    from imagebatch.core.chunks import chunk_bounds, job_chunks, send_chunks
    from imagebatch.db.lifecycle import ImageSource, claim_chunk, create_job
    from imagebatch.db.migrate import upgrade_to_head
    from imagebatch.db.session import session_scope

    upgrade_to_head()
    with session_scope() as session:
        create_job(
            session=session,
            job_id=spec["job_id"],
            model=spec.get("model", "resnet18"),
            top_k=spec.get("top_k", 5),
            store_probabilities=spec.get("store_probabilities", False),
            precision=spec.get("precision", "fp32"),
            decode=spec.get("decode"),
            chunk_size=spec["chunk_size"],
            images=[ImageSource(source, location) for source, location in spec["images"]],
        )
    if spec.get("cancel_first"):
        from imagebatch.db.lifecycle import request_cancel

        with session_scope() as session:
            request_cancel(session=session, job_id=spec["job_id"])
    bounds = chunk_bounds(len(spec["images"]), spec["chunk_size"])
    action = spec.get("action", "process")
    out: dict = {"chunks": bounds}
    if action == "process":
        from imagebatch.core.config import settings
        from imagebatch.worker import runner
        from imagebatch.worker.context import WorkerContext

        if spec.get("delete_during"):
            _delete_after_renditions(spec["job_id"])
        ctx = WorkerContext.build(settings)  # as worker.main does, without the Celery worker around it
        try:
            reports = [runner.process_chunk(ctx, spec["job_id"], start, stop) for start, stop in bounds]
        finally:
            ctx.close()
        out["reports"] = [r and r.__dict__ for r in reports]
    elif action == "enqueue":
        from imagebatch.core.config import settings
        from imagebatch.core.queueing import make_celery

        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the embedded broker's file lives there
        send_chunks(
            make_celery(),
            job_chunks(spec["job_id"], spec.get("model", "resnet18"), len(spec["images"]), spec["chunk_size"]),
        )
    elif action == "fail_chunk":
        from imagebatch.core.config import settings
        from imagebatch.worker.celery_app import app, process_chunk
        from imagebatch.worker.context import WorkerContext

        WorkerContext.build(settings).attach(app)
        start, stop = bounds[0]
        with session_scope() as session:
            claim_chunk(session=session, job_id=spec["job_id"], start=start, stop=stop, claimed_by="task-id")
        error = RuntimeError("database went away")
        process_chunk.on_failure(error, "task-id", (spec["job_id"], start, stop), {}, None)
        metrics = WorkerContext.of(app).metrics.registry
        out["gave_up"] = metrics.get_sample_value("imagebatch_worker_chunks_total", {"outcome": "gave_up"})
        out["failed_images"] = metrics.get_sample_value("imagebatch_worker_images_total", {"outcome": "failed"})
    print(json.dumps(out))


def _delete_after_renditions(job_id: str) -> None:
    """Make the writer's rendition step delete the job just before it stores a chunk's thumbnails."""
    from imagebatch.core.storage import get_store
    from imagebatch.db.lifecycle import delete_job
    from imagebatch.db.session import session_scope
    from imagebatch.worker import writer

    store_renditions = writer.store_renditions

    def deleted_first(*args, **kwargs):
        with session_scope() as session:
            delete_job(session=session, job_id=job_id)
        get_store().delete_prefix(f"{job_id}/")
        return store_renditions(*args, **kwargs)

    writer.store_renditions = deleted_first


if __name__ == "__main__":
    main(sys.argv[1])
