"""train(): epochs with per-epoch callbacks, best-epoch tracking, early stopping, checkpoints, resume, cancel."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from imagebatch.core import metrics
from imagebatch.core.config import settings
from imagebatch.worker.devices import (
    Capabilities,
    Precision,
    detect_capabilities,
    resolve_device,
    resolve_precision,
)
from imagebatch.worker.training import checkpoint
from imagebatch.worker.training.calibration_sample import CALIBRATION_DIR, write_calibration_sample
from imagebatch.worker.training.config import TrainingConfig
from imagebatch.worker.training.dataset import PreparedDataset
from imagebatch.worker.training.loop import CancelCheck, Cancelled, Stepper
from imagebatch.worker.training.metadata import model_metadata
from imagebatch.worker.training.model import build_network, save_custom_model

logger = logging.getLogger(__name__)

EpochCallback = Callable[[dict], None]

# bf16 autocast trains slower than fp32 on small images on a CPU: the convolutions are too small for its
# kernels to pay for the casts (bench/train_digits.py --sizes; README "Custom models" has the figures).
CPU_BF16_MIN_IMAGE_SIZE = 64


def training_precision(requested: str, device: str, caps: Capabilities, image_size: int) -> Precision:
    """The inference rule (worker/devices.py), except that `auto` keeps fp32 for small images on a CPU."""
    precision = resolve_precision(requested, device, caps)
    small = image_size < CPU_BF16_MIN_IMAGE_SIZE
    if requested == "auto" and precision.device_type == "cpu" and precision.resolved == "bf16" and small:
        note = f"auto: fp32 trains faster than bf16 on this CPU below {CPU_BF16_MIN_IMAGE_SIZE} px"
        return Precision(requested, "fp32", "cpu", note)
    return precision


@dataclass
class _Progress:
    """Everything a checkpoint carries besides the tensors of the network and optimizer."""

    epoch: int = 0  # last completed epoch
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_state: dict | None = None  # the best epoch's weights
    since_best: int = 0
    resumed_after: list[int] = field(default_factory=list)

    def is_better(self, stats: dict) -> bool:
        """A strictly higher validation accuracy (a tie keeps the earlier epoch and counts towards patience)."""
        return self.best_epoch is None or stats["val_accuracy"] > self.history[self.best_epoch - 1]["val_accuracy"]

    def done(self, config: TrainingConfig) -> bool:
        patience = config.early_stopping_patience
        return self.epoch >= config.epochs or (patience > 0 and self.since_best >= patience)


@dataclass(frozen=True)
class TrainingResult:
    status: str  # completed | cancelled
    history: list[dict]
    best_epoch: int | None
    stopped_early: bool
    precision: Precision
    model_dir: Path | None = None  # holds model.pt and model.json when completed
    meta: dict | None = None


def _snapshot(net: torch.nn.Module) -> dict:
    return {key: value.detach().clone() for key, value in net.state_dict().items()}


def _save(directory: Path | None, stepper: Stepper, progress: _Progress, fingerprint: str) -> None:
    if directory is None:
        return
    # The best weights travel only when they are not the current ones: a checkpoint stays ~1 model + optimizer.
    best_state = None if progress.best_epoch == progress.epoch else progress.best_state
    checkpoint.save_checkpoint(
        directory,
        {
            **stepper.state_dict(),
            "fingerprint": fingerprint,
            "epoch": progress.epoch,
            "history": progress.history,
            "best_epoch": progress.best_epoch,
            "best_state": best_state,
            "since_best": progress.since_best,
            "resumed_after": progress.resumed_after,
            "rng": checkpoint.rng_state(),
        },
    )


def _resume(state: dict, stepper: Stepper) -> _Progress:
    stepper.load_state_dict(state)
    checkpoint.restore_rng(state["rng"])
    best_state = state["best_state"] if state["best_state"] is not None else _snapshot(stepper.net)
    return _Progress(
        state["epoch"],
        state["history"],
        state["best_epoch"],
        best_state,
        state["since_best"],
        state["resumed_after"] + [state["epoch"]],
    )


def _run_epoch(stepper: Stepper, dataset: PreparedDataset, progress: _Progress, should_cancel: CancelCheck) -> dict:
    epoch, started = progress.epoch + 1, time.perf_counter()
    trained = stepper.train_epoch(dataset.train, epoch, should_cancel)
    validated = stepper.evaluate(dataset.val, should_cancel)
    stats = {
        "epoch": epoch,
        "train_loss": trained.loss,
        "train_accuracy": trained.accuracy,
        "val_loss": validated.loss,
        "val_accuracy": validated.accuracy,
        "seconds": round(time.perf_counter() - started, 3),
    }
    improved = progress.is_better(stats)
    progress.epoch = epoch
    progress.history.append(stats)
    if improved:
        progress.best_epoch, progress.best_state, progress.since_best = epoch, _snapshot(stepper.net), 0
    else:
        progress.since_best += 1
    logger.info(
        "epoch %d/%d: train loss %.4f acc %.3f, val loss %.4f acc %.3f, %.1fs%s",
        epoch,
        stepper.config.epochs,
        stats["train_loss"],
        stats["train_accuracy"],
        stats["val_loss"],
        stats["val_accuracy"],
        stats["seconds"],
        " (best)" if improved else "",
    )
    return stats


def train(
    dataset: PreparedDataset,
    config: TrainingConfig,
    *,
    output_dir: Path | str,
    checkpoint_dir: Path | str | None = None,
    on_epoch: EpochCallback | None = None,
    should_cancel: CancelCheck | None = None,
    device: str | None = None,
) -> TrainingResult:
    """Train, resuming from checkpoint_dir's last checkpoint when there is one; save the best epoch's model.

    Seeds torch's global RNG (config.seed). Cancelling (should_cancel() True before any batch) ends
    the run as "cancelled" with no model written; the checkpoints stay for the caller to remove or resume.
    """
    caps = detect_capabilities()
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    device = device or resolve_device("auto", caps)
    precision = training_precision(config.precision, device, caps, config.image_size)
    net, base_weights = build_network(config, len(dataset.classes))
    stepper = Stepper(net, config, dataset.preprocessing, len(dataset.train), device, precision)
    fingerprint = checkpoint.fingerprint(config.to_dict(), dataset.classes, dataset.sha256, dataset.split["val_files"])
    state = checkpoint.load_checkpoint(checkpoint_dir, fingerprint)
    progress = _resume(state, stepper) if state else _Progress()
    should_cancel = should_cancel or (lambda: False)
    try:
        while not progress.done(config):
            stats = _run_epoch(stepper, dataset, progress, should_cancel)
            _save(checkpoint_dir, stepper, progress, fingerprint)
            if on_epoch:
                on_epoch(dict(stats))
    except Cancelled:
        logger.info("training cancelled during epoch %d", progress.epoch + 1)
        return TrainingResult("cancelled", progress.history, progress.best_epoch, False, precision)
    return _finish(stepper, dataset, progress, base_weights, Path(output_dir))


def _finish(
    stepper: Stepper, dataset: PreparedDataset, progress: _Progress, base_weights: dict | None, output_dir: Path
) -> TrainingResult:
    """Evaluate the best epoch's weights on the validation split and save them with their metadata."""
    if progress.best_state is None or progress.best_epoch is None:
        raise RuntimeError("training finished without a completed epoch to keep")
    stepper.net.load_state_dict(progress.best_state)
    result = stepper.evaluate(dataset.val, lambda: False)
    evaluation = metrics.evaluate(result.true, result.rankings, dataset.classes)
    meta = model_metadata(
        dataset,
        stepper.config,
        base_weights=base_weights,
        precision=stepper.precision,
        device=stepper.device,
        history=progress.history,
        best_epoch=progress.best_epoch,
        evaluation=evaluation,
        resumed_after=progress.resumed_after,
    )
    # Kept now: the training images are gone once the job ends, and int8 calibrates on its own data.
    meta["calibration"] = write_calibration_sample(
        dataset.train.paths, output_dir / CALIBRATION_DIR, settings.INT8_CALIBRATION_IMAGES, stepper.config.seed
    )
    meta = save_custom_model(stepper.net, meta, output_dir)
    return TrainingResult(
        "completed", progress.history, progress.best_epoch, meta["stopped_early"], stepper.precision, output_dir, meta
    )
