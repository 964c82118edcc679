"""Artefacts: one row per cache key however many ask at once, one sender per pending build (again once its
message may be lost), pending -> ready | failed once, and a job's maps go with the job."""

import threading
from datetime import timedelta

from sqlalchemy import func, select

from imagebatch.core import artefacts
from imagebatch.db import lifecycle
from imagebatch.db.artefacts import build_order
from imagebatch.db.models import Artefact, utcnow
from tests.db.helpers import Sessions, add_job

EXPORT = artefacts.ExportRequest("", "resnet18", "resnet18", None, "onnx")
VALUES = {"kind": "export", "format": "onnx", "tenant": "", "model": "resnet18", "base_model": "resnet18"}


def request(db: Sessions, key: str = EXPORT.cache_key, **values) -> int:
    with db.begin() as session:
        return lifecycle.request_artefact(session=session, cache_key=key, **(values or VALUES)).id


def sent(db: Sessions, artefact_id: int, seconds_ago: float = artefacts.RESEND_AFTER_SECONDS) -> bool:
    with db.begin() as session:
        since = utcnow() - timedelta(seconds=seconds_ago)
        return lifecycle.mark_sent(session=session, artefact_id=artefact_id, unsent_since=since)


def test_one_row_per_key_and_one_sender(db):
    first = request(db)
    assert request(db) == first
    assert sent(db, first) and not sent(db, first)  # the second request finds it sent lately
    assert sent(db, first, seconds_ago=-1)  # long enough ago: its message may be lost, send again
    with db.begin() as session:
        key = "artefacts/1/resnet18.onnx"
        assert lifecycle.finish_artefact(
            session=session, artefact_id=first, storage_key=key, size_bytes=10, weights_sha256="a"
        )
        assert not lifecycle.fail_artefact(session=session, artefact_id=first, error="late duplicate")
    assert not sent(db, first, seconds_ago=-1)  # a ready artefact is never sent again
    with db() as session:
        row = session.get(Artefact, first)
        assert (row.state, row.weights_sha256, row.error) == ("ready", "a", None)


def test_a_failure_is_final_and_keeps_its_reason(db):
    failed = request(db, key="export/torchscript//resnet18/builtin", **{**VALUES, "format": "torchscript"})
    with db.begin() as session:
        assert lifecycle.fail_artefact(session=session, artefact_id=failed, error="exporter said no")
        assert not lifecycle.finish_artefact(
            session=session, artefact_id=failed, storage_key="k", size_bytes=1, weights_sha256="a"
        )
    with db() as session:
        row = session.get(Artefact, failed)
        assert (row.state, row.error) == ("failed", "exporter said no")


def test_concurrent_requests_make_one_row(pg):
    from sqlalchemy.orm import sessionmaker

    db = sessionmaker(bind=pg, expire_on_commit=False)
    barrier, ids = threading.Barrier(4), []

    def ask() -> None:
        barrier.wait()
        ids.append(request(db))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Artefact)) == 1
    assert len(set(ids)) == 1


def test_gradcam_order_names_its_image_and_goes_with_the_job(db):
    add_job(db, "camjob", total=3)
    key = artefacts.GradcamRequest("camjob", 2, 7, "overlay").cache_key
    values = {**VALUES, "kind": "gradcam", "format": "overlay", "job_id": "camjob", "image_index": 2, "class_index": 7}
    cam = request(db, key=key, **values)
    with db() as session:
        order = build_order(session, cam)
        assert order is not None
        assert (order.image_location, order.class_index, order.custom, order.custom_missing) == (
            "file:/nowhere/img2.jpg",
            7,
            None,
            False,
        )
    with db.begin() as session:
        lifecycle.delete_job(session=session, job_id="camjob")
    with db() as session:
        assert session.get(Artefact, cam) is None


def test_an_old_failure_is_built_again_when_asked(db):
    failed = request(db)
    with db.begin() as session:
        assert lifecycle.fail_artefact(session=session, artefact_id=failed, error="storage was down")
    with db.begin() as session:
        earlier = utcnow() - timedelta(seconds=artefacts.RETRY_FAILED_AFTER_SECONDS)
        assert not lifecycle.retry_failed(session=session, artefact_id=failed, failed_before=earlier)
        later = utcnow() + timedelta(seconds=1)
        assert lifecycle.retry_failed(session=session, artefact_id=failed, failed_before=later)
        assert not lifecycle.retry_failed(session=session, artefact_id=failed, failed_before=later)
    with db() as session:
        row = session.get(Artefact, failed)
        assert (row.state, row.error, row.sent_at) == ("pending", None, None)
    assert sent(db, failed)  # and its task goes out again
