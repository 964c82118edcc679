"""imagebatch: asynchronous bulk image classification."""

__version__ = "0.1.0"
