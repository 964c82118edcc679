"""The sample photos now live in imagebatch.core.samples (the worker calibrates int8 on them); re-exported here."""

from imagebatch.core.samples import sample_names, write_sample_photos

__all__ = ["sample_names", "write_sample_photos"]
