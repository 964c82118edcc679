"""Stable error categories stored on image rows (documented in the README)."""

EMPTY_FILE = "empty_file"  # zero bytes
UNREADABLE = "unreadable"  # not an image Pillow can identify (e.g. text named .jpg)
TRUNCATED = "truncated"  # image data ends early or is corrupt mid-stream
TOO_LARGE = "too_large"  # more pixels than Pillow's decompression-bomb limit
NOT_FOUND = "not_found"  # the stored blob or local file is gone
FETCH_FAILED = "fetch_failed"  # an http(s) URL could not be downloaded
FORBIDDEN_ADDRESS = "forbidden_address"  # a URL resolving to a loopback/private/metadata address
UNSUPPORTED_FORMAT = "unsupported_format"  # Pillow identifies the file but cannot decode it
INTERNAL = "internal"  # an unexpected failure while processing the image's chunk
JOB_FAILED = "job_failed"  # the whole job could not run (reason in the message)
TIMED_OUT = "timed_out"  # its chunk was claimed CHUNK_MAX_ATTEMPTS times and never finished

ALL = (
    EMPTY_FILE,
    UNREADABLE,
    TRUNCATED,
    TOO_LARGE,
    NOT_FOUND,
    FETCH_FAILED,
    INTERNAL,
    JOB_FAILED,
    TIMED_OUT,
    FORBIDDEN_ADDRESS,
    UNSUPPORTED_FORMAT,
)
