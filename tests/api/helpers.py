"""Shared test helpers: submit jobs, read rows back, and write simulated worker results."""

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from imagebatch.db.models import Image, ImageStatus, Job, LabelSet

WEIGHTS = "ResNet18_Weights.IMAGENET1K_V1"
# Like ImageNet ("crane" is both a bird and a machine), one label occurs twice.
LABELS = [f"class{i}" for i in range(1000)]
LABELS[10] = LABELS[20] = "crane"


def submit_uris(api, uris: list[str], **options) -> dict:
    response = api.client.post("/v1/jobs", json={"uris": uris, **options})
    assert response.status_code == 202, response.text
    return response.json()


def image_rows(api, job_id: str) -> list[Image]:
    with Session(api.engine) as session:
        return list(session.scalars(select(Image).where(Image.job_id == job_id).order_by(Image.idx)))


def job_count(api) -> int:
    with Session(api.engine) as session:
        return session.scalar(select(func.count()).select_from(Job))


@dataclass
class Expected:
    """What the worker would have computed for one image, computed here independently."""

    status: str
    probs: np.ndarray | None = None
    embedding: np.ndarray | None = None
    top: list[int] | None = None

    @property
    def confidence(self) -> float:
        return float(self.probs[self.top[0]])

    @property
    def entropy(self) -> float:
        p = self.probs.astype(np.float64)
        return float(-(p * np.log(p)).sum())


def _ok_values(rng: np.random.Generator, boost: int | None) -> tuple[Expected, dict]:
    logits = rng.normal(0, 2, 1000)
    if boost is not None:
        logits[boost] += 12  # make this class the clear top-1
    probs = np.exp(logits - logits.max())
    probs = (probs / probs.sum()).astype(np.float32)
    embedding = rng.normal(0, 1, 512).astype(np.float16)
    top = [int(i) for i in np.argsort(-probs, kind="stable")[:5]]
    exp = Expected(ImageStatus.OK.value, probs, embedding, top)
    mean, std = rng.uniform(0, 255, 3), rng.uniform(1, 80, 3)
    values = {
        "status": exp.status,
        "width": 64,
        "height": 48,
        "mode": "RGB",
        "format": "JPEG",
        "mean_r": mean[0],
        "mean_g": mean[1],
        "mean_b": mean[2],
        "std_r": std[0],
        "std_g": std[1],
        "std_b": std[2],
        "top1_index": top[0],
        "top1_label": LABELS[top[0]],
        "confidence": exp.confidence,
        "top5_mean": float(probs[top].astype(np.float64).mean()),
        "margin": float(probs[top[0]]) - float(probs[top[1]]),
        "entropy": exp.entropy,
        "embedding": embedding.astype("<f2").tobytes(),
        "probabilities": probs.astype("<f4").tobytes(),
        "processed_at": datetime.now(UTC),
    }
    return exp, values


def write_results(
    api, job_id: str, statuses: list[str], *, top_k: int, seed: int = 0, boost: dict[int, int] | None = None
) -> list[Expected]:
    """Simulate a worker: fill image rows (status ok/error/cancelled/pending) and the label set."""
    rng = np.random.default_rng(seed)
    expected = []
    with Session(api.engine) as session:
        session.execute(delete(LabelSet).where(LabelSet.weights == WEIGHTS))
        session.add(LabelSet(weights=WEIGHTS, labels=LABELS))
        for idx, status in enumerate(statuses):
            if status == ImageStatus.OK.value:
                exp, values = _ok_values(rng, (boost or {}).get(idx))
                values["topk"] = [
                    {"index": i, "label": LABELS[i], "probability": float(exp.probs[i])} for i in exp.top[:top_k]
                ]
            elif status == ImageStatus.ERROR.value:
                exp = Expected(status)
                values = {
                    "status": status,
                    "error_category": "unreadable",
                    "error_message": "cannot identify image file",
                    "processed_at": datetime.now(UTC),
                }
            else:
                exp, values = Expected(status), {"status": status}
            session.execute(update(Image).where(Image.job_id == job_id, Image.idx == idx).values(**values))
            expected.append(exp)
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state="running",
                running_at=datetime.now(UTC),
                reproducibility={"model": "resnet18", "weights": WEIGHTS, "embedding_dtype": "float16"},
            )
        )
        session.commit()
    return expected
