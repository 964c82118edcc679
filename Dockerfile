# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target api    -t imagebatch-api .     # HTTP API + CLI + migrations, no torch
#   docker build --target worker -t imagebatch-worker .  # Celery worker with CUDA torch
# The worker takes torch/torchvision from the PyTorch wheel index for one CUDA version
# (TORCH_INDEX_URL, default cu128). Those wheels bundle the CUDA runtime, so the host needs
# only an NVIDIA driver that supports that CUDA version plus the NVIDIA Container Toolkit.
# Pick the index matching your driver from https://pytorch.org/get-started/locally/
# (e.g. .../whl/cu126, or .../whl/cpu for a CPU-only worker image).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 imagebatch \
    && mkdir -p /data/uploads /models/torch \
    && chown -R imagebatch:imagebatch /data /models
WORKDIR /app
ENV IMAGEBATCH_DATA_DIR=/data

FROM base AS api
COPY pyproject.toml README.md ./
COPY core ./core
COPY api ./api
COPY db ./db
COPY worker ./worker
COPY client ./client
COPY cli ./cli
RUN pip install .
USER imagebatch
EXPOSE 8000
CMD ["imagebatch", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS worker
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# Same pins as pyproject.toml's worker extra; a layer of its own so code changes do not refetch torch.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY core ./core
COPY api ./api
COPY db ./db
COPY worker ./worker
COPY client ./client
COPY cli ./cli
RUN pip install ".[worker]"
# Weights are read from (and on first use downloaded to) $TORCH_HOME/hub/checkpoints/.
ENV TORCH_HOME=/models/torch
USER imagebatch
CMD ["imagebatch", "worker"]
