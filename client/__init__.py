"""Python client for the imagebatch HTTP API: submit jobs, watch them, fetch and export results."""

from imagebatch.client.client import Client, ProgressCallback
from imagebatch.client.errors import ApiError, ApiUnreachable, ImagebatchError, NotFound, Unauthorized, WaitTimeout
from imagebatch.client.job import FINAL_STATES, Job
from imagebatch.client.training import Evaluation, TrainingJob

__all__ = [
    "FINAL_STATES",
    "ApiError",
    "ApiUnreachable",
    "Client",
    "Evaluation",
    "ImagebatchError",
    "Job",
    "NotFound",
    "ProgressCallback",
    "TrainingJob",
    "Unauthorized",
    "WaitTimeout",
]
