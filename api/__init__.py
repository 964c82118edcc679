"""HTTP API: accepts jobs, enqueues chunk tasks by name, serves results (never imports torch)."""
