"""The client's custom-model calls: train, list and inspect models, delete them, evaluate them."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import httpx

from imagebatch.client.labelled import labelled_archive
from imagebatch.client.training import Evaluation, EvaluationClient, TrainingJob

_UPLOAD_TIMEOUT = 600.0


def _form(options: dict[str, Any]) -> dict[str, str]:
    return {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in options.items()}


class ModelsApi:
    """Mixed into imagebatch.client.Client (which supplies _request and timeout)."""

    timeout: float

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:  # pragma: no cover
        raise NotImplementedError

    def _evaluation_client(self) -> EvaluationClient:
        # This mixin is part of imagebatch.client.Client, which has every method an Evaluation calls.
        return cast(EvaluationClient, self)

    def _labelled(
        self, path: str, data: str | Path | Sequence[str], labels: Sequence[str] | None, options: dict
    ) -> httpx.Response:
        """POST a labelled set: a folder or archive as multipart, or URIs with `labels` as JSON."""
        options = {k: v for k, v in options.items() if v is not None}
        if labels is not None:
            if isinstance(data, (str, Path)):
                raise ValueError("labels go with a list of URIs; a folder or archive carries its classes")
            return self._request("POST", path, json={"uris": list(data), "labels": list(labels), **options})
        if not isinstance(data, (str, Path)):
            raise ValueError("give a folder or archive, or a list of URIs with labels=[...]")
        timeout = httpx.Timeout(max(self.timeout, _UPLOAD_TIMEOUT), connect=min(self.timeout, 5.0))
        with labelled_archive(data) as archive, open(archive, "rb") as f:
            files = {"archive": (archive.name, f, "application/octet-stream")}
            return self._request("POST", path, data=_form(options), files=files, timeout=timeout)

    def train(
        self,
        data: str | Path | Sequence[str],
        *,
        name: str,
        labels: Sequence[str] | None = None,
        base_model: str | None = None,
        mode: str | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        backbone_lr_factor: float | None = None,
        weight_decay: float | None = None,
        image_size: int | None = None,
        val_fraction: float | None = None,
        seed: int | None = None,
        early_stopping_patience: int | None = None,
        augment: bool | None = None,
        horizontal_flip: bool | None = None,
        crop_scale_min: float | None = None,
        precision: str | None = None,
    ) -> TrainingJob:
        """Start a training job on a folder (one subfolder per class, or train/ and val/ folders of them to
        validate on val/; zipped here), an archive of one, or URIs with `labels`; options left as None take
        the API's defaults. TrainingJob.wait() follows it."""
        options = {k: v for k, v in locals().items() if k not in ("self", "data", "labels")}
        return TrainingJob(self, self._labelled("/v1/training-jobs", data, labels, options).json())

    def get_training_job(self, job_id: str) -> TrainingJob:
        return TrainingJob(self, self._request("GET", f"/v1/training-jobs/{job_id}").json())

    def list_training_jobs(self, *, state: str | None = None, limit: int = 50) -> list[TrainingJob]:
        params = {"limit": limit, **({"state": state} if state else {})}
        page = self._request("GET", "/v1/training-jobs", params=params).json()
        return [TrainingJob(self, item) for item in page["items"]]

    def cancel_training_job(self, job_id: str) -> TrainingJob:
        return TrainingJob(self, self._request("POST", f"/v1/training-jobs/{job_id}/cancel").json())

    def delete_training_job(self, job_id: str) -> None:
        self._request("DELETE", f"/v1/training-jobs/{job_id}")

    def models(self) -> list[dict[str, Any]]:
        """Built-in models, then every version of your custom models (name, version, classes, metrics...)."""
        return self._request("GET", "/v1/models").json()["items"]

    def model(self, name: str) -> dict[str, Any]:
        """One model in full (`name`: latest version, `name:version`): curves, scores, versions."""
        return self._request("GET", f"/v1/models/{name}").json()

    def delete_model(self, name: str) -> None:
        """Delete every version of a custom model (`name`) or one (`name:version`); refused while in use."""
        self._request("DELETE", f"/v1/models/{name}")

    def evaluate(
        self,
        data: str | Path | Sequence[str],
        *,
        model: str,
        labels: Sequence[str] | None = None,
        precision: str | None = None,
        top_k: int | None = None,
    ) -> Evaluation:
        """Evaluate `model` on a labelled folder, archive, or URIs with `labels`; Evaluation.wait() follows it."""
        options = {"model": model, "precision": precision, "top_k": top_k}
        return Evaluation(self._evaluation_client(), self._labelled("/v1/evaluations", data, labels, options).json())

    def get_evaluation(self, job_id: str) -> Evaluation:
        return Evaluation(self._evaluation_client(), self._request("GET", f"/v1/evaluations/{job_id}").json())
