"""Image files for tests: now in imagebatch.testing.images (scripts/faults.py uses them too)."""

from imagebatch.testing.images import photo, write_broken, write_photos

__all__ = ["photo", "write_broken", "write_photos"]
