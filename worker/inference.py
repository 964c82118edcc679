"""One batched forward per chunk, then the per-image statistics of its softmax, as pure functions."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from imagebatch.worker.devices import Precision
from imagebatch.worker.gpu import to_model_input
from imagebatch.worker.models import LoadedModel

logger = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class ImageResult:
    topk: list[dict]  # [{"index", "label", "probability"}], best first
    confidence: float  # top-1 probability
    top5_mean: float
    margin: float  # top-1 minus top-2 probability
    entropy: float  # nats
    embedding: np.ndarray  # float32, penultimate layer
    probabilities: np.ndarray | None  # float32, all classes, when the job stores them


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats per row; a zero probability contributes nothing (0·log 0 = 0)."""
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


def top_mean(probs: torch.Tensor, k: int = 5) -> torch.Tensor:
    return probs.topk(min(k, probs.shape[-1]), dim=-1).values.mean(dim=-1)


def margin(probs: torch.Tensor) -> torch.Tensor:
    """How far the winner is ahead of the runner-up."""
    best_two = probs.topk(2, dim=-1).values
    return best_two[..., 0] - best_two[..., 1]


def forward(
    model: LoadedModel, tensors: Sequence[torch.Tensor], precision: Precision, net: Forward | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 probabilities, float32 embeddings) on the CPU, from one forward over the batch.

    `net`: what runs instead of the model's own forward (an int8 version of it).
    """
    batch = to_model_input(tensors, model.transform, model.plan)
    with torch.inference_mode(), precision.autocast():
        logits, embedding = (net or model.inference_net)(batch)
    with torch.inference_mode():
        # Softmax in float32 even under autocast: low-precision logits would round small probabilities.
        probs = torch.softmax(logits.float(), dim=-1)
        return probs.cpu(), embedding.float().cpu()


def summarize(
    probs: torch.Tensor, embeddings: torch.Tensor, labels: Sequence[str], top_k: int, keep_probabilities: bool
) -> list[ImageResult]:
    """Per-image results from a batch of probabilities; vectorized, then split into rows."""
    k = min(top_k, probs.shape[-1])
    values, indices = probs.topk(k, dim=-1)
    stats = torch.stack([probs.max(dim=-1).values, top_mean(probs), margin(probs), entropy(probs)], dim=1)
    results = []
    for row in range(probs.shape[0]):
        confidence, top5, gap, nats = stats[row].tolist()
        topk = [
            {"index": i, "label": labels[i], "probability": p}
            for i, p in zip(indices[row].tolist(), values[row].tolist(), strict=True)
        ]
        results.append(
            ImageResult(
                topk=topk,
                confidence=confidence,
                top5_mean=top5,
                margin=gap,
                entropy=nats,
                embedding=embeddings[row].numpy(),
                probabilities=probs[row].numpy() if keep_probabilities else None,
            )
        )
    return results


def infer(
    model: LoadedModel,
    tensors: Sequence[torch.Tensor],
    precision: Precision,
    top_k: int,
    keep_probabilities: bool = False,
    net: Forward | None = None,
) -> list[ImageResult]:
    """Results for each tensor, in order; an empty batch runs nothing (`net`: as in forward)."""
    if not tensors:
        return []
    probs, embeddings = forward(model, tensors, precision, net)
    return summarize(probs, embeddings, model.labels, top_k, keep_probabilities)
