"""What a running training job shares after every epoch: its history in the database, its checkpoint in storage."""

import logging
from collections.abc import Callable
from pathlib import Path

from imagebatch.core.storage import get_store
from imagebatch.worker.training.checkpoint import CHECKPOINT_NAME

logger = logging.getLogger(__name__)


class SharedCheckpoint:
    """The run's checkpoint: train() writes it locally; after each epoch it is copied to the blob store,
    where a worker resuming the job (this one's died) fetches it before calling train() again."""

    def __init__(self, prefix: str, local: Path) -> None:
        self.key = f"{prefix}checkpoint/{CHECKPOINT_NAME}"
        self.local = local

    def restore(self) -> bool:
        """Fetch the last shared checkpoint, if there is one; True when there was."""
        self.local.mkdir(parents=True, exist_ok=True)
        store = get_store()
        if not store.exists(self.key):
            return False
        with store.open(self.key) as source, open(self.local / CHECKPOINT_NAME, "wb") as target:
            while block := source.read(1024 * 1024):
                target.write(block)
        logger.info("restored checkpoint %s", self.key)
        return True

    def share(self) -> str:
        with open(self.local / CHECKPOINT_NAME, "rb") as f:
            get_store().write_stream(self.key, f)
        return self.key

    def discard(self) -> None:
        get_store().delete_prefix(self.key)


def best_of(epochs: list[dict]) -> dict | None:
    """The epoch with the highest validation accuracy, the earliest on a tie (the trainer's rule)."""
    best = None
    for stats in epochs:
        if best is None or stats["val_accuracy"] > best["val_accuracy"]:
            best = stats
    return None if best is None else {"epoch": best["epoch"], "val_accuracy": best["val_accuracy"]}


class EpochLog:
    """train()'s on_epoch: the history so far (by epoch number, so a resumed epoch replaces its first try),
    written to the job before its checkpoint is shared, so the database never runs ahead of a resume."""

    def __init__(self, epochs: list[dict], total: int, write: Callable[..., None], checkpoint: SharedCheckpoint):
        self.epochs = {e["epoch"]: e for e in epochs}
        self.total, self.write, self.checkpoint = total, write, checkpoint

    def add(self, stats: dict) -> None:
        self.epochs[stats["epoch"]] = stats
        # Epochs past this one belong to a run that died after writing them: this run makes them again.
        history = [self.epochs[n] for n in sorted(self.epochs) if n <= stats["epoch"]]
        self.epochs = {e["epoch"]: e for e in history}
        self.write(epochs=history, best=best_of(history), progress=min(len(history) / self.total, 1.0))
        self.write(checkpoint_key=self.checkpoint.share())
