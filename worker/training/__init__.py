"""Training: the engine (prepare a labelled set, train a ResNet, evaluate, save it); job_*.py run a training job."""

from imagebatch.core.metrics import evaluate
from imagebatch.worker.training.config import MODES, TrainingConfig
from imagebatch.worker.training.dataset import DatasetReport, PreparedDataset, prepare_dataset
from imagebatch.worker.training.errors import (
    CheckpointMismatch,
    ConfigError,
    CustomModelError,
    DatasetError,
    TrainingInputError,
)
from imagebatch.worker.training.model import load_custom_model
from imagebatch.worker.training.trainer import TrainingResult, train

__all__ = [
    "MODES",
    "CheckpointMismatch",
    "ConfigError",
    "CustomModelError",
    "DatasetError",
    "DatasetReport",
    "PreparedDataset",
    "TrainingConfig",
    "TrainingInputError",
    "TrainingResult",
    "evaluate",
    "load_custom_model",
    "prepare_dataset",
    "train",
]
