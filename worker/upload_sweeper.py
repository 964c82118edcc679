"""Upload blobs left by an API process that died mid-upload: removed once no job owns them after a grace period."""

import logging
import re

from imagebatch.core.storage import BlobStore
from imagebatch.db.session import session_scope
from imagebatch.db.views import existing_jobs

logger = logging.getLogger(__name__)

# The API names every job it stores uploads for with uuid4().hex; other top-level folders
# (training/, models/, artefacts/, ...) are never an upload's, whatever they are called.
_JOB_FOLDER = re.compile(r"^[0-9a-f]{32}$")


def sweep_uploads(store: BlobStore, grace: float) -> list[str]:
    """Delete the top-level job folders with no job row, untouched for `grace` seconds; their names.

    An upload writes under '<job id>/' before the job row exists (the row is committed only once
    the body is complete), and the API removes those files when a request fails; a process
    killed mid-body cannot, so they wait here. An upload still going keeps writing, so a folder
    idle for longer than UPLOAD_ORPHAN_GRACE belongs to a request that is gone.
    """
    names = [name for name in store.top_level() if _JOB_FOLDER.match(name)]
    if not names:
        return []
    with session_scope() as session:
        owned = existing_jobs(session, names)
    removed = []
    for name in names:
        if name in owned:
            continue
        idle = store.idle_seconds(name)
        if idle is None or idle < grace:
            continue
        store.delete_prefix(f"{name}/")
        removed.append(name)
    if removed:
        logger.warning("removed the blobs of %d upload(s) that no job owns (idle over %.0fs)", len(removed), grace)
    return removed
