"""Log set-up for the API and workers: plain text or one JSON object per line, with job/chunk ids."""

import contextvars
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("imagebatch_job_id", default=None)
_chunk: contextvars.ContextVar[str | None] = contextvars.ContextVar("imagebatch_chunk", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else was passed with extra= and goes into the JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_JOB_PATH = re.compile(r"^/v1/jobs/([0-9a-f]{32})(?:/|$)")


@contextmanager
def log_context(job_id: str | None = None, chunk: str | None = None) -> Iterator[None]:
    """Every record logged inside (same thread or task) carries these ids."""
    tokens = [_job_id.set(job_id), _chunk.set(chunk)]
    try:
        yield
    finally:
        _chunk.reset(tokens[1])
        _job_id.reset(tokens[0])


def bind_job(job_id: str) -> None:
    """Attach a job id to the rest of the current context (e.g. a request that just made one)."""
    _job_id.set(job_id)


class ContextFilter(logging.Filter):
    """Copies the context's job/chunk ids onto records that do not name them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _job_id.get()
        if getattr(record, "chunk", None) is None:
            record.chunk = _chunk.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job_id, chunk, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None and key not in entry:
                entry[key] = value if isinstance(value, (str, int, float, bool)) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The plain format, with "[job … chunk …]" appended when the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [f"{name} {getattr(record, name)}" for name in ("job_id", "chunk") if getattr(record, name, None)]
        return f"{text} [{' '.join(ids)}]" if ids else text


def configure_logging(level: str = "INFO", as_json: bool | None = None) -> None:
    """Replace the root handlers with one stderr handler (JSON when LOG_JSON) carrying the context."""
    from imagebatch.core.config import settings

    use_json = settings.LOG_JSON if as_json is None else as_json
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


class JobLogContext:
    """ASGI middleware: requests under /v1/jobs/<id> log with that job id."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        match = _JOB_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        with log_context(job_id=match.group(1)):
            await self.app(scope, receive, send)
