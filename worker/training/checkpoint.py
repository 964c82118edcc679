"""A run's state after every epoch, written atomically to one file, so a restarted worker resumes it."""

import hashlib
import json
import logging
from pathlib import Path

import torch

from imagebatch.worker.training.errors import CheckpointMismatch
from imagebatch.worker.training.files import atomic_write

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_FORMAT = 1


def fingerprint(config: dict, classes: list[str], dataset_sha256: str, val_files: list[str]) -> str:
    """What a checkpoint must match to be resumed: the same options, classes, data and split."""
    record = {"config": config, "classes": classes, "dataset": dataset_sha256, "val_files": val_files}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """The global generators training draws from (augmentation); shuffling has its own per-epoch seed."""
    state: dict[str, torch.Tensor | list[torch.Tensor]] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: Path, state: dict) -> Path:
    """Write state (model, optimizer, scheduler, scaler, epoch, best, history, RNG, fingerprint) atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT_NAME
    atomic_write(path, lambda f: torch.save({**state, "format": CHECKPOINT_FORMAT}, f))
    return path


def load_checkpoint(directory: Path | None, expected_fingerprint: str) -> dict | None:
    """The last checkpoint in directory, or None; CheckpointMismatch if it belongs to another run."""
    path = directory / CHECKPOINT_NAME if directory else None
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatch(f"{path} has checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    if state["fingerprint"] != expected_fingerprint:
        raise CheckpointMismatch(
            f"{path} belongs to a run with other options, classes or images: use a new checkpoint folder"
        )
    logger.info("resuming from %s after epoch %d", path, state["epoch"])
    return state
