"""The sample photos now live in imagebatch.worker.samples (the worker calibrates int8 on them); re-exported here."""

from imagebatch.worker.samples import sample_names, write_sample_photos

__all__ = ["sample_names", "write_sample_photos"]
