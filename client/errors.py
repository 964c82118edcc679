"""Errors the client raises, and the API's error message as one line."""

import httpx


class ImagebatchError(Exception):
    """Base of every error the client raises; str() is one line meant for people."""


class ApiUnreachable(ImagebatchError):
    """No HTTP answer: nothing listens at the URL, DNS failed, or the connection timed out."""


class ApiError(ImagebatchError):
    """The API answered with an error status; `detail` is its {"detail": ...} message."""

    def __init__(self, status: int, detail: str, url: str = "") -> None:
        self.status, self.detail, self.url = status, detail, url
        super().__init__(f"API error {status}: {detail}")


class NotFound(ApiError):
    """404: no such job (or it was deleted)."""


class Unauthorized(ApiError):
    """401/403: the API key is missing, wrong or revoked."""


class WaitTimeout(ImagebatchError):
    """Job.wait() gave up before the job reached a final state."""


def error_detail(response: httpx.Response) -> str:
    """The API's error message as one line: its "detail", validation errors joined."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text.strip() or response.reason_phrase
    if not isinstance(detail, str):  # FastAPI validation errors are a list of dicts
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" if isinstance(d, dict) else str(d)
            for d in (detail if isinstance(detail, list) else [detail])
        )
    return " ".join(detail.split())[:500]
