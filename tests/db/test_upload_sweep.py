"""The sweep of uploads a killed API left: job and training-job folders no row owns go after the grace."""

import os
import time
import uuid
from pathlib import Path

import pytest

from imagebatch.core.storage import BlobStore
from imagebatch.worker import upload_sweeper
from tests.db.helpers import add_job, add_training, scope_on

GRACE = 60.0


@pytest.fixture(autouse=True)
def _sweeps_use_the_test_database(db, monkeypatch) -> None:
    monkeypatch.setattr(upload_sweeper, "session_scope", scope_on(db))


def _folder(root: Path, key: str, idle: float) -> Path:
    """An upload's folder with one file, last written `idle` seconds ago."""
    folder = root / key
    folder.mkdir(parents=True)
    part = folder / "000000.jpg"
    part.write_bytes(b"\xff\xd8\xff" + os.urandom(64))
    stamp = time.time() - idle
    made = [root / parent for parent in folder.relative_to(root).parents if parent != Path(".")]
    for path in (part, folder, *made):  # the file and every folder the upload made
        os.utime(path, (stamp, stamp))
    return folder


def test_orphans_of_both_kinds_go_and_owned_or_fresh_folders_stay(db, tmp_path) -> None:
    root = tmp_path / "blobs"
    ids = {name: uuid.uuid4().hex for name in ("job", "orphan", "fresh", "trained", "t_orphan", "t_fresh")}
    add_job(db, ids["job"], total=1)
    add_training(db, ids["trained"])
    folders = {
        "job": _folder(root, ids["job"], 10 * GRACE),
        "orphan": _folder(root, ids["orphan"], 2 * GRACE),
        "fresh": _folder(root, ids["fresh"], GRACE / 2),
        "trained": _folder(root, f"training/{ids['trained']}/data", 10 * GRACE),
        "t_orphan": _folder(root, f"training/{ids['t_orphan']}/data", 2 * GRACE),
        "t_fresh": _folder(root, f"training/{ids['t_fresh']}/data", GRACE / 2),
        "models": _folder(root, "models/_/digits/run", 10 * GRACE),  # never an upload's
    }
    removed = upload_sweeper.sweep_uploads(BlobStore(str(root)), GRACE)
    assert sorted(removed) == sorted([ids["orphan"], f"training/{ids['t_orphan']}"])
    gone = {name for name, folder in folders.items() if not folder.exists()}
    assert gone == {"orphan", "t_orphan"}
    assert not (root / "training" / ids["t_orphan"]).exists() and (root / "training").is_dir()
    assert upload_sweeper.sweep_uploads(BlobStore(str(root)), GRACE) == []  # nothing left to sweep
