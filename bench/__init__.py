"""The throughput benchmark (scripts/benchmark.py, `imagebatch bench`): seed loop, offline script,
model-only bound, decode-only and the service end to end on the same images and weights."""
