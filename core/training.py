"""Training options: the one definition of what a training submission may set (form, JSON, OpenAPI, worker)."""

from typing import Any, Literal

from celery import Celery
from pydantic import BaseModel, ConfigDict, Field, field_validator

from imagebatch.core.catalog import check_custom_name
from imagebatch.core.queueing import TRAIN_QUEUE, TRAIN_TASK

MODES = ("transfer", "finetune", "scratch")
TRAINING_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class TrainingOptions(BaseModel):
    """How to train: form fields of a multipart submission, keys of a JSON one, the training job's `options`.

    The hyper-parameters are the training engine's TrainingConfig fields with the same defaults and
    limits (tests/core/test_training_options.py holds the two together); `name` is the model's name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the model's name: `model=<name>` classifies with its latest version")
    base_model: Literal["resnet18", "resnet50"] = Field(default="resnet18", description="the architecture")
    mode: Literal["transfer", "finetune", "scratch"] = Field(
        default="transfer",
        description="transfer: frozen pretrained backbone, new head; finetune: all layers, the backbone at a "
        "lower learning rate; scratch: random initialisation",
    )
    epochs: int = Field(default=10, ge=1, le=1000)
    batch_size: int = Field(default=32, ge=1, le=4096)
    learning_rate: float = Field(default=1e-3, gt=0, le=10, description="peak of a one-cycle AdamW schedule")
    backbone_lr_factor: float = Field(default=0.1, gt=0, le=1, description="finetune: backbone rate = this x rate")
    weight_decay: float = Field(default=0.01, ge=0, le=1)
    image_size: int = Field(default=224, ge=16, le=1024, description="crop side the network sees, pixels")
    val_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="share of each class held out for validation (ignored when the archive gives train/ and val/)",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    early_stopping_patience: int = Field(
        default=0, ge=0, le=1000, description="stop after this many epochs without a better validation accuracy"
    )
    augment: bool = Field(default=True, description="random resized crop (+ flip) of training images")
    horizontal_flip: bool = Field(default=True, description="part of augment; off for digits, text, arrows")
    crop_scale_min: float = Field(default=0.35, gt=0, le=1, description="smallest area a random crop keeps")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="autocast precision; auto picks what trains fastest here"
    )

    @field_validator("name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        return check_custom_name(value)

    def hyperparameters(self) -> dict[str, Any]:
        """Everything but the name: the engine's TrainingConfig fields."""
        return self.model_dump(exclude={"name"})


def send_training(app: Celery, job_id: str) -> None:
    """The training job's one message, by task name on the training queue (the API never imports worker code)."""
    app.send_task(TRAIN_TASK, args=[job_id], queue=TRAIN_QUEUE)


# Where a training job's files live in blob storage (the API writes the data, the worker the rest).
MANIFEST_NAME = "manifest.json"  # {"format": 1, "classes": [...], "files": [{"path": "cat/a.jpg", "location": ...}]}
MANIFEST_FORMAT = 1
# Format 1 plus "val_files" (same entries): a given validation folder. A worker that knows only format 1
# refuses it instead of ignoring the folder and splitting the training files.
GIVEN_SPLIT_FORMAT = 2


TRAINING_ROOT = "training/"  # every training job's folder is under it


def training_prefix(job_id: str) -> str:
    """manifest.json, data/ (uploaded images), checkpoint/last.pt: deleted with the training job."""
    return f"{TRAINING_ROOT}{job_id}/"


def model_prefix(tenant: str | None, name: str, run: str) -> str:
    """model.pt and model.json of the model a training run registered: deleted with that version."""
    owner = (tenant or "_").replace("/", "_")
    return f"models/{owner}/{name}/{run}/"
