"""Training jobs and evaluations as the client sees them: watch epochs as they end, read the scores."""

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from imagebatch.client.errors import WaitTimeout
from imagebatch.client.job import FINAL_STATES, Job, JobClient

if TYPE_CHECKING:
    import pandas as pd

EpochCallback = Callable[[dict[str, Any]], None]


class TrainingClient(Protocol):
    """What a TrainingJob asks of the client that made it (imagebatch.client.Client)."""

    def get_training_job(self, job_id: str) -> "TrainingJob": ...

    def cancel_training_job(self, job_id: str) -> "TrainingJob": ...


class TrainingJob:
    """A training job as last seen; refresh() or wait() fetch it again. `data` is the API's JSON."""

    def __init__(self, client: TrainingClient, data: dict[str, Any]) -> None:
        self.client, self.data = client, data

    def __repr__(self) -> str:
        return f"TrainingJob(id={self.id!r}, state={self.state!r}, epochs={len(self.epochs)}, model={self.model})"

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def state(self) -> str:
        return self.data["state"]

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """{epoch, train_loss, train_accuracy, val_loss, val_accuracy, seconds} per finished epoch."""
        return self.data.get("epochs") or []

    @property
    def best(self) -> dict[str, Any] | None:
        return self.data.get("best")

    @property
    def model(self) -> str | None:
        """The registered model as `name:version` (what `model=` takes), once completed."""
        model = self.data.get("model")
        return f"{model['name']}:{model['version']}" if model else None

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    def refresh(self) -> "TrainingJob":
        self.data = self.client.get_training_job(self.id).data
        return self

    def wait(
        self, poll: float = 1.0, timeout: float | None = None, on_epoch: EpochCallback | None = None
    ) -> "TrainingJob":
        """Poll until completed/failed/cancelled; `on_epoch(stats)` once for each epoch as it ends.

        An epoch run again after a resume (its worker died) is reported again with its new numbers.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: dict[int, dict[str, Any]] = {}
        while True:
            self.refresh()
            for stats in self.epochs:
                if on_epoch and seen.get(stats["epoch"]) != stats:
                    on_epoch(stats)
                seen[stats["epoch"]] = stats
            if self.done:
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"training job {self.id} still {self.state} after {timeout:g}s")
            time.sleep(poll)

    def cancel(self) -> "TrainingJob":
        self.data = self.client.cancel_training_job(self.id).data
        return self


class EvaluationClient(JobClient, Protocol):
    """What an Evaluation asks of its client: a Job's needs, and fetching the evaluation again."""

    def get_evaluation(self, job_id: str) -> "Evaluation": ...


class Evaluation(Job):
    """An evaluation: a job whose images carry their true label, plus its metrics."""

    client: EvaluationClient

    def refresh(self) -> "Evaluation":
        self.data = self.client.get_evaluation(self.id).data
        return self

    @property
    def metrics(self) -> dict[str, Any] | None:
        """count, top1_accuracy, top5_accuracy, per_class, macro_avg, confusion_matrix {classes, rows}."""
        return self.data.get("metrics")

    def misclassified(self, **filters: Any) -> "pd.DataFrame":
        """The images whose top-1 prediction is not their true label, as a DataFrame."""
        return self.results(correct="false", **filters)  # a False filter would be dropped as unset
