"""Client: one connection to an imagebatch API, from submitting a job to exporting its results."""

import mimetypes
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from imagebatch.client.errors import ApiError, ApiUnreachable, NotFound, Unauthorized, error_detail
from imagebatch.client.files import RowProgress, replace_into
from imagebatch.client.job import Job
from imagebatch.client.models_api import ModelsApi
from imagebatch.client.tools import ToolsApi
from imagebatch.client.uploads import ARCHIVE_SUFFIXES, LazyFile, collect_files, collect_uris, suffix_of
from imagebatch.core.config import settings

if TYPE_CHECKING:  # pandas is imported on first use so the CLI starts quickly
    import pandas as pd


_PAGE_SIZE = 500

ProgressCallback = Callable[[int, int], None]  # (bytes sent, total bytes)


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _query(filters: dict[str, Any]) -> dict[str, str]:
    return {k: _encode(v) for k, v in filters.items() if v is not None and v is not False}


class Client(ModelsApi, ToolsApi):
    """Talks to one imagebatch API; use as a context manager or call close().

    Jobs here; training, models and evaluations in ModelsApi (client/models_api.py); model exports and
    Grad-CAM maps in ToolsApi (client/tools.py).
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or settings.API_URL).rstrip("/")
        key = api_key or os.environ.get("IMAGEBATCH_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0))
        )

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _unreachable(self, exc: httpx.TransportError) -> ApiUnreachable:
        reason = "no answer in time" if isinstance(exc, httpx.TimeoutException) else (str(exc) or type(exc).__name__)
        return ApiUnreachable(
            f"cannot reach the imagebatch API at {self.url} ({reason}); "
            "is `imagebatch serve` running? Set --url or IMAGEBATCH_API_URL."
        )

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400:
            return response
        detail = error_detail(response)
        if response.status_code == 404:
            raise NotFound(404, detail, str(response.url))
        if response.status_code in (401, 403):
            detail += " (check the API key: --api-key or IMAGEBATCH_API_KEY)"
            raise Unauthorized(response.status_code, detail, str(response.url))
        raise ApiError(response.status_code, detail, str(response.url))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        return self._check(response)

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz").json()

    def ready(self) -> dict[str, Any]:
        return self._request("GET", "/readyz").json()

    def submit(
        self,
        paths_or_uris: str | Path | Iterable[str | Path],
        *,
        model: str | None = None,
        top_k: int | None = None,
        store_probabilities: bool | None = None,
        precision: str | None = None,
        decode: str | None = None,
        callback_url: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Create a job from image files/folders, one archive, http(s) URLs or a URI manifest.

        Options left as None take the API's defaults. `precision`: auto, fp32, bf16, fp16 or int8
        (quantized on the CPU, calibrated on a recorded image set; numbers differ slightly from fp32).
        `decode` is "exact" (torchvision's preprocessing bit for bit; the default with precision="fp32")
        or "fast". `callback_url` receives a signed POST when the job ends. `on_progress(sent, total)`
        follows the upload in bytes.
        """
        items = [paths_or_uris] if isinstance(paths_or_uris, (str, Path)) else list(paths_or_uris)
        if not items:
            raise ValueError("nothing to submit: give image files, folders, an archive, URLs or a manifest")
        options = {
            "model": model,
            "top_k": top_k,
            "store_probabilities": store_probabilities,
            "precision": precision,
            "decode": decode,
            "callback_url": callback_url,
        }
        options = {k: v for k, v in options.items() if v is not None}
        uris = collect_uris(items)
        if uris is not None:
            return Job(self, self._request("POST", "/v1/jobs", json={"uris": uris, **options}).json())
        return self._upload(collect_files(items), options, on_progress)

    def _upload(
        self, files: list[tuple[str, Path, int]], options: dict[str, Any], on_progress: ProgressCallback | None
    ) -> Job:
        """POST the files (or the one archive) as a multipart job, streaming each from disk."""
        total = sum(size for _, _, size in files)
        sent = 0

        def count(n: int) -> None:
            nonlocal sent
            sent += n
            if on_progress:
                on_progress(sent, total)

        field = "archive" if len(files) == 1 and suffix_of(files[0][1]) in ARCHIVE_SUFFIXES else "files"
        parts = [
            (field, (name, LazyFile(path, size, count), mimetypes.guess_type(name)[0] or "application/octet-stream"))
            for name, path, size in files
        ]
        form = {k: _encode(v) for k, v in options.items()}
        # The API answers only after storing every upload; give it longer than a normal call.
        timeout = httpx.Timeout(max(self.timeout, 600.0), connect=min(self.timeout, 5.0))
        response = self._request("POST", "/v1/jobs", data=form, files=parts, timeout=timeout)
        return Job(self, response.json())

    def get_job(self, job_id: str) -> Job:
        return Job(self, self._request("GET", f"/v1/jobs/{job_id}").json())

    def list_jobs(self, *, state: str | None = None, limit: int = 50) -> list[Job]:
        """Newest jobs first (the API's order), following cursors up to `limit` jobs."""
        jobs: list[Job] = []
        cursor = None
        while len(jobs) < limit:
            params = _query({"state": state, "limit": min(limit - len(jobs), 200), "cursor": cursor})
            page = self._request("GET", "/v1/jobs", params=params).json()
            jobs.extend(Job(self, item) for item in page["items"])
            cursor = page.get("next_cursor")
            if not cursor or not page["items"]:
                break
        return jobs

    def cancel(self, job_id: str) -> Job:
        return Job(self, self._request("POST", f"/v1/jobs/{job_id}/cancel").json())

    def delete(self, job_id: str) -> None:
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def iter_results(self, job_id: str, *, page_size: int = _PAGE_SIZE, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every result row matching the filters, fetching page after page.

        Filters: label, min_confidence, max_confidence, max_entropy, status, errors_only,
        include ("embedding", "probabilities" or both as a list).
        """
        cursor = None
        while True:
            params = _query({**filters, "limit": page_size, "cursor": cursor})
            page = self._request("GET", f"/v1/jobs/{job_id}/results", params=params).json()
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor or not page["items"]:
                return

    def results(self, job_id: str, *, limit: int | None = None, **filters: Any) -> "pd.DataFrame":
        """Result rows as a DataFrame (one row per image); error split into two columns."""
        import pandas as pd

        rows = []
        for item in self.iter_results(job_id, page_size=min(limit or _PAGE_SIZE, _PAGE_SIZE), **filters):
            rows.append(flatten(item))
            if limit is not None and len(rows) >= limit:
                break
        return pd.DataFrame.from_records(rows)

    def image(self, job_id: str, index: int) -> dict[str, Any]:
        """One image's full result with its embedding and links to its bytes and thumbnail."""
        return self._request("GET", f"/v1/jobs/{job_id}/images/{index}").json()

    def similar(
        self, image: str | tuple[str, int], index: int | None = None, *, k: int = 10, scope: str = "job"
    ) -> "pd.DataFrame":
        """The k images nearest (cosine on embeddings) to one image, best first.

        The image is `(job_id, index)`, `"job_id/index"`, or `job_id` with `index`. scope "job"
        searches that job; "model" every job of the same model the key can see.
        """
        import pandas as pd

        job_id, index = _image_ref(image, index)
        params = {"k": k, "scope": scope}
        found = self._request("GET", f"/v1/jobs/{job_id}/images/{index}/similar", params=params).json()
        columns = ["job_id", "index", "similarity", "source", "top1_label", "confidence"]
        return pd.DataFrame.from_records(found["items"], columns=columns)

    def export_csv(
        self,
        job_id: str,
        path: str | Path,
        probabilities: bool = False,
        on_progress: RowProgress | None = None,
        expected: int = 0,
        **filters: Any,
    ) -> Path:
        """Stream GET /results.csv to `path` (written beside it, then renamed into place)."""
        params = _query({**filters, "probabilities": probabilities})

        def write(partial: Path) -> None:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/results.csv", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                lines = 0
                with open(partial, "wb") as out:
                    for block in response.iter_bytes():
                        out.write(block)
                        lines += block.count(b"\n")
                        if on_progress:  # rows so far, the header line excluded
                            on_progress(max(lines - 1, 0), max(expected, lines - 1))

        try:
            return replace_into(Path(path), write)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None


def _image_ref(image: str | tuple[str, int], index: int | None) -> tuple[str, int]:
    if isinstance(image, tuple):
        return image[0], int(image[1])
    if index is not None:
        return image, int(index)
    job_id, sep, idx = image.partition("/")
    if not sep or not idx.isdigit():
        raise ValueError(f"image {image!r}: give (job_id, index), 'job_id/index', or job_id and index")
    return job_id, int(idx)


def flatten(item: dict[str, Any]) -> dict[str, Any]:
    """One result item as a flat row: its error split into error_category and error_message."""
    row = dict(item)
    error = row.pop("error", None) or {}
    row["error_category"] = error.get("category")
    row["error_message"] = error.get("message")
    return row
