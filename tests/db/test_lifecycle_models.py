"""The model registry: versions count up per tenant and name (atomically), are never reused, and a version a
job still uses cannot be deleted."""

import threading

from sqlalchemy.orm import Session

from imagebatch.core.catalog import ModelRef
from imagebatch.db import lifecycle
from imagebatch.db.registry import find_model, list_models, model_versions, versions_in_use
from tests.db.helpers import Sessions, add_job


def new_model(name: str = "colours", sha: str = "a") -> lifecycle.NewModel:
    return lifecycle.NewModel(
        name=name,
        base_model="resnet18",
        mode="transfer",
        classes=["blue", "red"],
        metrics={"val_accuracy": 0.9},
        weights_sha256=sha * 64,
        weights_key=f"models/_/{name}/run/model.pt",
        meta={"history": [{"epoch": 1}]},
    )


def register(db: Sessions, tenant: str | None = None, **kwargs) -> int:
    with db.begin() as session:
        return lifecycle.register_model(session=session, tenant=tenant, model=new_model(**kwargs))


def test_versions_count_up_per_tenant_and_name(db):
    assert [register(db), register(db), register(db, name="shapes"), register(db, tenant="acme")] == [1, 2, 1, 1]
    with db() as session:
        assert find_model(session, None, ModelRef("colours")).version == 2
        assert find_model(session, None, ModelRef("colours", 1)).version == 1
        assert find_model(session, "acme", ModelRef("colours", 2)) is None
        assert [(m.name, m.version) for m in list_models(session, None)] == [
            ("colours", 2),
            ("colours", 1),
            ("shapes", 1),
        ]
        stored = find_model(session, None, ModelRef("colours", 1))
        assert (stored.classes, stored.meta, stored.tenant) == (["blue", "red"], {"history": [{"epoch": 1}]}, "")


def test_a_deleted_version_is_gone_and_its_number_never_comes_back(db):
    register(db)
    register(db)
    with db.begin() as session:
        assert lifecycle.delete_model(session=session, tenant=None, name="colours", version=2) == [
            (2, "models/_/colours/run/model.pt")
        ]
    with db() as session:
        assert find_model(session, None, ModelRef("colours")).version == 1
        assert find_model(session, None, ModelRef("colours", 2)) is None
    assert register(db) == 3


def test_a_version_used_by_an_unfinished_job_is_not_deleted(db):
    register(db)
    register(db)
    add_job(db, "uses-v1", custom_model="colours", model_version=1)
    with db() as session:
        assert versions_in_use(session, None, "colours") == [1]
    with db.begin() as session:
        assert lifecycle.delete_model(session=session, tenant=None, name="colours", version=1) == []
        # The whole name: the free version goes, the one in use stays.
        assert [v for v, _ in lifecycle.delete_model(session=session, tenant=None, name="colours")] == [2]
    with db.begin() as session:
        lifecycle.request_cancel(session=session, job_id="uses-v1")
    with db.begin() as session:
        assert [v for v, _ in lifecycle.delete_model(session=session, tenant=None, name="colours")] == [1]
    with db() as session:
        assert model_versions(session, None, "colours") == []


def test_concurrent_registrations_of_one_name_get_distinct_versions(pg):
    """Sessions on PostgreSQL racing on the same max(version): the unique constraint and a retry sort them out."""
    versions: list[int] = []
    barrier = threading.Barrier(4)

    def one() -> None:
        with Session(pg) as session, session.begin():
            barrier.wait()
            versions.append(lifecycle.register_model(session=session, tenant="t", model=new_model()))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == [1, 2, 3, 4]
