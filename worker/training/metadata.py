"""The record saved beside a custom model: what it is, how it was trained, on what, and how well it did."""

import importlib.metadata
import platform
from datetime import UTC, datetime

import torch

from imagebatch.core.catalog import MODELS
from imagebatch.worker.devices import Precision
from imagebatch.worker.training.config import TrainingConfig
from imagebatch.worker.training.dataset import PreparedDataset

_PACKAGES = ("imagebatch", "torch", "torchvision", "pillow", "numpy")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _data_record(dataset: PreparedDataset, config: TrainingConfig) -> dict:
    """Inputs and transforms: enough to rebuild the training set and serve the model the same way."""
    prep = dataset.preprocessing
    return {
        "classes": list(dataset.classes),
        "num_classes": len(dataset.classes),
        "image_size": config.image_size,
        # Inference: resize the short side to resize_size (bilinear, antialiased), center crop image_size,
        # normalise with mean/std; load_custom_model returns exactly this as an ImageClassification preset.
        "preprocessing": prep.to_dict(),
        "training_transforms": {
            "augment": config.augment,
            "random_resized_crop_scale": [config.crop_scale_min, 1.0],
            "horizontal_flip": config.augment and config.horizontal_flip,
            "source": f"each image decoded once, short side resized to {prep.resize_size}, then cropped",
        },
        "split": {**dataset.split, "train_count": len(dataset.train), "val_count": len(dataset.val)},
        "dataset": {"sha256": dataset.sha256, "report": dataset.report.to_dict()},
    }


def model_metadata(
    dataset: PreparedDataset,
    config: TrainingConfig,
    *,
    base_weights: dict | None,
    precision: Precision,
    device: str,
    history: list[dict],
    best_epoch: int,
    evaluation: dict,
    resumed_after: list[int],
) -> dict:
    """JSON-ready metadata; save_custom_model adds the weights file's name and SHA-256."""
    return {
        "kind": "imagebatch.custom_model",
        "created_at": datetime.now(UTC).isoformat(),
        "architecture": config.base_model,
        "base_model": config.base_model,
        "base_weights": base_weights,  # None for scratch; else the weights' name, file and SHA-256
        "mode": config.mode,
        "embedding_dim": MODELS[config.base_model].embedding_dim,
        **_data_record(dataset, config),
        "hyperparameters": config.to_dict(),
        "seed": config.seed,
        "optimizer": "AdamW, one-cycle learning-rate schedule stepped per batch",
        "precision": {"requested": precision.requested, "resolved": precision.resolved, "note": precision.note},
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "versions": library_versions(),
        "history": history,
        "best_epoch": best_epoch,
        "best": history[best_epoch - 1],
        "stopped_early": len(history) < config.epochs,
        "resumed_after_epochs": resumed_after,
        "evaluation": evaluation,  # of the best epoch's weights on the validation split
    }
