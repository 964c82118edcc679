"""Upload blobs left by an API process that died mid-upload: removed once no job owns them after a grace period."""

import logging
import re

from imagebatch.core.storage import BlobStore
from imagebatch.core.training import TRAINING_ROOT
from imagebatch.db.models import Job, TrainingJob
from imagebatch.db.session import session_scope
from imagebatch.db.views import existing_jobs

logger = logging.getLogger(__name__)

# The API names every job it stores uploads for with uuid4().hex; other top-level folders
# (training/, models/, artefacts/, ...) are never an upload's, whatever they are called.
_JOB_FOLDER = re.compile(r"^[0-9a-f]{32}$")


def sweep_uploads(store: BlobStore, grace: float) -> list[str]:
    """Delete the upload folders no job or training job owns, untouched for `grace` seconds; their keys.

    An upload writes under '<job id>/' (a training job's under 'training/<job id>/') before its row
    exists (the row is committed only once the body is complete, the manifest written), and the
    API removes those files when a request fails; a process killed mid-body cannot, so they wait
    here. An upload still going keeps writing, so a folder idle for longer than UPLOAD_ORPHAN_GRACE
    belongs to a request that is gone.
    """
    removed = _sweep(store, "", Job, grace) + _sweep(store, TRAINING_ROOT, TrainingJob, grace)
    if removed:
        logger.warning("removed the blobs of %d upload(s) that no job owns (idle over %.0fs)", len(removed), grace)
    return removed


def _sweep(store: BlobStore, parent: str, table: type[Job] | type[TrainingJob], grace: float) -> list[str]:
    names = [name for name in store.children(parent) if _JOB_FOLDER.match(name)]
    if not names:
        return []
    with session_scope() as session:
        owned = existing_jobs(session, names, table)
    removed = []
    for name in names:
        if name in owned:
            continue
        prefix = f"{parent}{name}"
        idle = store.idle_seconds(prefix)
        if idle is None or idle < grace:
            continue
        store.delete_prefix(f"{prefix}/")
        removed.append(prefix)
    return removed
