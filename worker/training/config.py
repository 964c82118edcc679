"""Hyper-parameters of one training run, validated once, recorded with the model."""

import dataclasses
from dataclasses import dataclass

from imagebatch.core.catalog import MODELS
from imagebatch.worker.training.errors import ConfigError

MODES = ("transfer", "finetune", "scratch")


@dataclass(frozen=True)
class TrainingConfig:
    """What to train and how; defaults suit fine-tuning on a few hundred photos per class."""

    base_model: str = "resnet18"  # resnet18 | resnet50
    mode: str = "transfer"  # transfer: frozen backbone, new head; finetune: all layers; scratch: random init
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3  # the head's (all layers' in transfer and scratch), AdamW peak of a one-cycle schedule
    backbone_lr_factor: float = 0.1  # finetune: the backbone learns at learning_rate * this
    weight_decay: float = 0.01
    image_size: int = 224  # the crop side the network sees
    val_fraction: float = 0.2  # ignored when a validation folder is given
    seed: int = 0
    early_stopping_patience: int = 0  # epochs without a better validation accuracy; 0 = never stop early
    augment: bool = True  # random resized crop + horizontal flip on training images
    horizontal_flip: bool = True  # part of augment; off for images a mirror changes the meaning of (digits, text)
    crop_scale_min: float = 0.35  # smallest area fraction a random resized crop keeps
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (resolved per device, see worker/devices.py)

    def __post_init__(self) -> None:
        checks = (
            (self.base_model in MODELS, f"base_model must be one of {', '.join(MODELS)}"),
            (self.mode in MODES, f"mode must be one of {', '.join(MODES)}"),
            (1 <= self.epochs <= 1000, "epochs must be between 1 and 1000"),
            (1 <= self.batch_size <= 4096, "batch_size must be between 1 and 4096"),
            (0 < self.learning_rate <= 10, "learning_rate must be above 0 and at most 10"),
            (0 < self.backbone_lr_factor <= 1, "backbone_lr_factor must be above 0 and at most 1"),
            (0 <= self.weight_decay <= 1, "weight_decay must be between 0 and 1"),
            (16 <= self.image_size <= 1024, "image_size must be between 16 and 1024 pixels"),
            (0 < self.val_fraction < 1, "val_fraction must be above 0 and below 1"),
            (0 <= self.early_stopping_patience <= 1000, "early_stopping_patience must be between 0 and 1000"),
            (0 < self.crop_scale_min <= 1, "crop_scale_min must be above 0 and at most 1"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "precision must be auto, fp32, bf16 or fp16"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{message} (got {self._offending(message)})")

    def _offending(self, message: str) -> object:
        return getattr(self, message.split()[0])

    @property
    def pretrained(self) -> bool:
        return self.mode != "scratch"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        """From a JSON body or a record; unknown keys are an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc
