"""Route modules: jobs, results and health/metrics."""
