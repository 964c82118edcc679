"""Writing exports safely: a file appears complete or not at all; pages of items with progress."""

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

RowProgress = Callable[[int, int], None]  # (rows written, rows expected)


def replace_into(path: Path, write: Callable[[Path], None]) -> Path:
    """Write beside the target, then rename: a failed export never leaves a half file behind."""
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return path


def paged(
    items: Iterable[dict[str, Any]], size: int, expected: int, on_progress: RowProgress | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Items in pages of `size` (the last may be short or empty), reporting rows so far every 100."""
    page: list[dict[str, Any]] = []
    fetched = 0
    for item in items:
        page.append(item)
        fetched += 1
        if on_progress and fetched % 100 == 0:
            on_progress(fetched, expected)
        if len(page) == size:
            yield page
            page = []
    yield page
    if on_progress:
        on_progress(fetched, max(expected, fetched))
