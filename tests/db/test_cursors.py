"""Cursors: what the API hands out comes back intact; anything else is InvalidCursor saying why."""

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from imagebatch.db.cursors import (
    INT32_MAX,
    MAX_CURSOR_CHARS,
    InvalidCursor,
    JobCursor,
    ResultCursor,
    decode_cursor,
    encode_cursor,
)


def _b64(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        ResultCursor(after=0),
        ResultCursor(after=INT32_MAX),
        JobCursor(c=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), i="0123456789abcdef0123456789abcdef"),
        JobCursor(c=datetime(1, 1, 1, tzinfo=UTC), i="a"),
    ],
)
def test_a_cursor_handed_out_comes_back_equal(cursor):
    text = encode_cursor(cursor)
    assert "=" not in text and len(text) <= MAX_CURSOR_CHARS
    assert decode_cursor(text, type(cursor)) == cursor


def test_job_cursor_times_are_compared_in_utc():
    east = datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    decoded = decode_cursor(_b64({"c": east.isoformat(), "i": "abc"}), JobCursor)
    assert decoded.c == datetime(2026, 1, 1, tzinfo=UTC) and decoded.c.tzinfo == UTC


@pytest.mark.parametrize(
    "payload, why",
    [
        ({"after": True}, "after: Input should be a valid integer"),
        ({"after": 2**31}, "after: Input should be less than or equal to 2147483647"),
        ({"after": -1}, "after: Input should be greater than or equal to 0"),
        ({"after": 2.0}, "after: Input should be a valid integer"),
        ({"after": "2"}, "after: Input should be a valid integer"),
        ({"after": 2, "i": "x"}, "i: Extra inputs are not permitted"),
        ([2], "Input should be an object"),
    ],
)
def test_a_tampered_result_cursor_says_what_is_wrong(payload, why):
    with pytest.raises(InvalidCursor) as caught:
        decode_cursor(_b64(payload), ResultCursor)
    assert str(caught.value).startswith(f"cursor: not a cursor returned by this API ({why})")


@pytest.mark.parametrize(
    "payload, why",
    [
        ({"c": "2026-01-01T00:00:00+00:00", "i": "a\x00b"}, "i: String should match pattern"),
        ({"c": "2026-01-01T00:00:00+00:00", "i": "x" * 33}, "i: String should match pattern"),
        ({"c": "2026-01-01T00:00:00+00:00", "i": 12}, "i: Input should be a valid string"),
        ({"c": "2026-01-01T00:00:00", "i": "abc"}, "c: Input should have timezone info"),
        ({"c": 1767225600, "i": "abc"}, "c: Input should be a valid datetime"),
        ({"c": "0001-01-01T00:00:00+23:59", "i": "abc"}, "c: timestamp out of range"),
        ({"c": "9999-12-31T23:59:59-01:00", "i": "abc"}, "c: timestamp out of range"),
        ({"after": 1}, "c: Field required"),
    ],
)
def test_a_tampered_job_cursor_says_what_is_wrong(payload, why):
    with pytest.raises(InvalidCursor) as caught:
        decode_cursor(_b64(payload), JobCursor)
    assert str(caught.value).startswith(f"cursor: not a cursor returned by this API ({why}")


@pytest.mark.parametrize(
    "text, message",
    [
        ("not base64!", "cursor: not URL-safe base64"),
        ("a", "cursor: not URL-safe base64"),
        (base64.urlsafe_b64encode(b"\xff\xfe{").decode(), "cursor: not a cursor returned by this API (Invalid JSON"),
        ("A" * (MAX_CURSOR_CHARS + 1), f"cursor: longer than {MAX_CURSOR_CHARS} characters"),
    ],
)
def test_what_is_not_even_a_cursor_is_refused(text, message):
    with pytest.raises(InvalidCursor) as caught:
        decode_cursor(text, ResultCursor)
    assert str(caught.value).startswith(message)
    assert str(caught.value).endswith("pass back the next_cursor of the previous page unchanged")
