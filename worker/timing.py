"""A chunk's timing: its report, and the log line (one JSON record per chunk) the benchmark and tests read."""

# Free of torch and the database, so test harnesses and the benchmark import it cheaply.
import json
from dataclasses import dataclass

CHUNK_TIMING = "chunk-timing "  # the marker that starts the record in a log line


def timing_line(record: dict) -> str:
    """The log message for one chunk's record."""
    return CHUNK_TIMING + json.dumps(record)


def parse_timing(line: str) -> dict | None:
    """The record in a log line, or None when the line holds none."""
    if CHUNK_TIMING not in line:
        return None
    # raw_decode: log formatters may append context after the JSON object.
    return json.JSONDecoder().raw_decode(line.split(CHUNK_TIMING, 1)[1])[0]


@dataclass(frozen=True)
class ChunkReport:
    succeeded: int
    failed: int
    read_seconds: float
    forward_seconds: float
    write_seconds: float
    wait_seconds: float = 0.0  # decoded, waiting for another chunk's forward to finish
    began: float = 0.0  # wall clock (time.time()) when reading started
