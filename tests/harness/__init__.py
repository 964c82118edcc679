"""Real services, processes and images for the tests and scripts/faults.py: no mocks, nothing torch at import."""
