"""The client's model-tool calls: download a model export, or a Grad-CAM map of an image, once a worker built it."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from imagebatch.client.errors import WaitTimeout
from imagebatch.client.files import replace_into

_DEFAULT_RETRY_AFTER = 2.0
_BUILD_TIMEOUT = 900.0  # builds take seconds, but the task waits behind any chunk already running
_DOWNLOAD_TIMEOUT = 300.0

Waiting = Callable[[float], None]  # called with the seconds waited so far, on each 202


class ToolsApi:
    """Mixed into imagebatch.client.Client (which supplies _request and timeout)."""

    timeout: float

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:  # pragma: no cover
        raise NotImplementedError

    def _built(self, path: str, params: dict[str, str], timeout: float, on_wait: Waiting | None) -> httpx.Response:
        """GET `path` until it answers 200 (following 202's Retry-After); WaitTimeout after `timeout` s."""
        started = time.monotonic()
        request_timeout = httpx.Timeout(max(self.timeout, _DOWNLOAD_TIMEOUT), connect=min(self.timeout, 5.0))
        while True:
            response = self._request("GET", path, params=params, timeout=request_timeout)
            if response.status_code != 202:
                return response
            waited = time.monotonic() - started
            if waited > timeout:
                raise WaitTimeout(f"{path} was still being built after {timeout:.0f} s; is a worker serving the model?")
            if on_wait:
                on_wait(waited)
            time.sleep(float(response.headers.get("Retry-After", _DEFAULT_RETRY_AFTER)))

    def _save(self, response: httpx.Response, out: str | Path) -> Path:
        def write(partial: Path) -> None:
            partial.write_bytes(response.content)

        return replace_into(Path(out), write)

    def export_model(
        self,
        name: str,
        out: str | Path,
        *,
        format: str = "onnx",
        timeout: float = _BUILD_TIMEOUT,
        on_wait: Waiting | None = None,
    ) -> Path:
        """Save a model (`resnet18`, a custom `name` or `name:version`) as ONNX or TorchScript (`format`) to `out`,
        waiting while a worker builds it. The file's metadata names the model, classes, transforms, weights hash."""
        response = self._built(f"/v1/models/{name}/export", {"format": format}, timeout, on_wait)
        return self._save(response, out)

    def gradcam(
        self,
        job_id: str,
        index: int,
        out: str | Path,
        *,
        class_: str | int | None = None,
        format: str = "heatmap",
        timeout: float = _BUILD_TIMEOUT,
        on_wait: Waiting | None = None,
    ) -> Path:
        """Save the Grad-CAM PNG of image `index` of a job to `out`: for `class_` (an index or label; default the
        top-1 class), `format` heatmap (8-bit grey) or overlay (the model's input crop with the map blended in)."""
        params = {"format": format, **({"class": str(class_)} if class_ is not None else {})}
        response = self._built(f"/v1/jobs/{job_id}/images/{index}/gradcam", params, timeout, on_wait)
        return self._save(response, out)
