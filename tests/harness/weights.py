"""Seeded random checkpoints under the official file names: these machines cannot download weights."""

from pathlib import Path

import pytest


def random_torch_home(tmp_path_factory: pytest.TempPathFactory, *models: str) -> Path:
    """A fresh TORCH_HOME whose hub/checkpoints/ holds a seeded random checkpoint per model."""
    from imagebatch.worker.random_weights import write_random_checkpoint

    home = tmp_path_factory.mktemp("torch_home")
    for model in models or ("resnet18",):
        write_random_checkpoint(model, home, seed=0)
    return home
