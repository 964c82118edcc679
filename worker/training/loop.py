"""One epoch of training and one pass of evaluation, batch by batch, with a cancel check between batches."""

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from imagebatch.worker.devices import Precision
from imagebatch.worker.models import ResNetWithEmbedding
from imagebatch.worker.training.config import TrainingConfig
from imagebatch.worker.training.images import BatchTransform, ImageSet, Preprocessing
from imagebatch.worker.training.model import parameter_groups, set_train_mode

logger = logging.getLogger(__name__)

CancelCheck = Callable[[], bool]
RANKING_LENGTH = 5  # predictions kept per validation image (top-5 accuracy)


class Cancelled(Exception):
    """should_cancel() answered True."""


def batch_slices(count: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch; a last batch of one image is dropped (BatchNorm cannot train on it)."""
    slices = [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
    if len(slices) > 1 and slices[-1][1] - slices[-1][0] == 1:
        slices.pop()
    return slices


def shuffled(count: int, seed: int, epoch: int) -> list[int]:
    """The epoch's order, a pure function of (seed, epoch): a resumed run draws the same one."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(count, generator=generator).tolist()


def batches(
    images: ImageSet, order: Sequence[int], batch_size: int, transform: BatchTransform
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start, stop in batch_slices(len(order), batch_size):
        chosen = order[start:stop]
        yield transform([images.image(i) for i in chosen]), images.labels[chosen]


@dataclass(frozen=True)
class PassResult:
    loss: float  # mean cross-entropy per image
    accuracy: float
    true: list[int]
    rankings: list[list[int]]  # best first, evaluation passes only


class Stepper:
    """The network, optimizer, one-cycle schedule and gradient scaler of a run, on its device and precision."""

    def __init__(
        self,
        net: ResNetWithEmbedding,
        config: TrainingConfig,
        prep: Preprocessing,
        train_size: int,
        device: str,
        precision: Precision,
    ) -> None:
        self.net, self.config, self.device, self.precision = net.to(device), config, device, precision
        groups = parameter_groups(net, config)
        self.optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.steps_per_epoch = len(batch_slices(train_size, config.batch_size))
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=[g["lr"] for g in groups], total_steps=config.epochs * self.steps_per_epoch
        )
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(precision.device_type, enabled=precision.resolved == "fp16")
        self.train_transform = BatchTransform(prep, True, config.augment, config.crop_scale_min, config.horizontal_flip)
        self.eval_transform = BatchTransform(prep, False, False)

    def state_dict(self) -> dict:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.precision.autocast():
            logits, _ = self.net(x)
        loss = F.cross_entropy(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach(), logits.detach()

    def train_epoch(self, images: ImageSet, epoch: int, should_cancel: CancelCheck) -> PassResult:
        set_train_mode(self.net, self.config)
        total_loss, correct, seen = 0.0, 0, 0
        order = shuffled(len(images), self.config.seed, epoch)
        for x, y in batches(images, order, self.config.batch_size, self.train_transform):
            if should_cancel():
                raise Cancelled
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss, logits = self._step(x, y)
            total_loss += float(loss) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        if not math.isfinite(total_loss):
            raise FloatingPointError(f"training loss became {total_loss} in epoch {epoch}: lower learning_rate")
        return PassResult(total_loss / seen, correct / seen, [], [])

    @torch.inference_mode()
    def evaluate(self, images: ImageSet, should_cancel: CancelCheck) -> PassResult:
        """Loss, top-1 accuracy and each image's top-5 ranking, in the images' order."""
        self.net.eval()
        total_loss, rankings = 0.0, []
        k = min(RANKING_LENGTH, self.net.fc.out_features)
        for start in range(0, len(images), self.config.batch_size):
            if should_cancel():
                raise Cancelled
            stop = min(start + self.config.batch_size, len(images))
            x = self.eval_transform([images.image(i) for i in range(start, stop)]).to(self.device)
            y = images.labels[start:stop].to(self.device)
            with self.precision.autocast():
                logits, _ = self.net(x)
            total_loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            rankings += logits.float().topk(k, dim=1).indices.cpu().tolist()
        true = images.labels.tolist()
        accuracy = sum(t == r[0] for t, r in zip(true, rankings, strict=True)) / len(true)
        return PassResult(total_loss / len(true), accuracy, true, rankings)
