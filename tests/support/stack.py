"""API and worker processes for tests: now in imagebatch.testing.stack (scripts/faults.py uses them too)."""

from imagebatch.testing.stack import BIN, Stack, wait_for_job

__all__ = ["BIN", "Stack", "wait_for_job"]
