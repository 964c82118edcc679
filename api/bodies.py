"""What every POST /v1/jobs body shares: the error a client must fix, the parsed submission, the streamed body."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from imagebatch.api.schemas import describe_validation_error
from imagebatch.core.config import settings
from imagebatch.core.options import JobOptions
from imagebatch.db.lifecycle import ImageSource


class SubmissionError(Exception):
    """A request the client must fix; becomes {"detail": message} with this status."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass
class Submission:
    options: JobOptions
    images: list[ImageSource]
    skipped: list[dict[str, str]] = field(default_factory=list)
    # "<size>:<sha256>" of each uploaded image, in the order of `images` (none for a URI list).
    digests: list[str] = field(default_factory=list)


def parse_options(raw: dict[str, Any]) -> JobOptions:
    try:
        return JobOptions.model_validate(raw)
    except ValidationError as exc:
        raise SubmissionError(422, describe_validation_error(exc)) from exc


def too_big(limit: int) -> str:
    return f"request body is larger than {limit} bytes (MAX_UPLOAD_BYTES)"


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives, within MAX_UPLOAD_BYTES; 408 once the client has sent nothing for
    UPLOAD_IDLE_TIMEOUT seconds (a stalled client would otherwise hold its blobs for ever)."""
    chunks, received = request.stream(), 0
    idle, limit = settings.UPLOAD_IDLE_TIMEOUT, settings.MAX_UPLOAD_BYTES
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise SubmissionError(
                408, f"no request body received for {idle:g} s (IMAGEBATCH_UPLOAD_IDLE_TIMEOUT); upload dropped"
            ) from None
        received += len(chunk)
        if received > limit:
            raise SubmissionError(413, too_big(limit))
        yield chunk
