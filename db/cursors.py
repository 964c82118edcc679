"""Keyset-pagination cursors: opaque base64 JSON on the way out, strictly validated on the way back in."""

import base64
import binascii
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from imagebatch.db.models import JOB_ID_PATTERN

# Image.idx is an INTEGER column: anything larger would reach the database as an error.
INT32_MAX = 2**31 - 1
# Far longer than any cursor handed out; a longer one is not worth decoding.
MAX_CURSOR_CHARS = 512
_HINT = "pass back the next_cursor of the previous page unchanged"


class InvalidCursor(ValueError):
    """A cursor this API did not hand out, or one that was altered (answered with 400)."""


class _Cursor(BaseModel):
    # Strict: a bool is no index, "3" is no number, and unknown keys mean someone made it up.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ResultCursor(_Cursor):
    """After image index `after` of a job's results (index order)."""

    after: int = Field(ge=0, le=INT32_MAX)


class JobCursor(_Cursor):
    """After the job created at `c` (UTC) with id `i`, in newest-first order."""

    c: AwareDatetime
    i: str = Field(pattern=JOB_ID_PATTERN)

    @field_validator("c")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:  # e.g. 0001-01-01T00:00+23:59 is before year 1 in UTC
            raise ValueError("timestamp out of range") from exc


CursorT = TypeVar("CursorT", bound=_Cursor)


def encode_cursor(cursor: _Cursor) -> str:
    """URL-safe base64 of the cursor's JSON, without padding."""
    return base64.urlsafe_b64encode(cursor.model_dump_json().encode()).decode().rstrip("=")


def _why(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def decode_cursor(cursor: str, kind: type[CursorT]) -> CursorT:
    """The cursor `kind` that `cursor` encodes, or InvalidCursor saying what is wrong with it."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor(f"cursor: longer than {MAX_CURSOR_CHARS} characters; {_HINT}")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor(f"cursor: not URL-safe base64; {_HINT}") from exc
    try:
        return kind.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidCursor(f"cursor: not a cursor returned by this API ({_why(exc)}); {_HINT}") from exc
