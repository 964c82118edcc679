"""The Celery worker: reads images, runs one batched ResNet forward per chunk, writes results."""
