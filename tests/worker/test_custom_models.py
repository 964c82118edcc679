"""Registered custom models in a worker: fetched from storage, checked against the registry's SHA-256, loaded
once per process, the least recently used evicted past CUSTOM_MODEL_CACHE."""

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from imagebatch.core.storage import BlobStore
from imagebatch.worker import custom_models
from imagebatch.worker.custom_models import CustomModelCache, RegisteredWeights
from imagebatch.worker.gpu import plan_for
from imagebatch.worker.models import ModelUnavailable, ResNetWithEmbedding
from imagebatch.worker.training.images import Preprocessing
from imagebatch.worker.training.model import save_custom_model


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlobStore:
    """A real blob store in a folder of this test (the worker's get_store() points at it)."""
    blobs = BlobStore(str(tmp_path / "blobs"))
    monkeypatch.setattr(custom_models, "get_store", lambda: blobs)
    return blobs


def _saved(store: BlobStore, tmp_path: Path, name: str, classes: list[str], seed: int) -> RegisteredWeights:
    """A random custom model saved as training saves one and uploaded as the runner uploads it."""
    torch.manual_seed(seed)
    resnet = torchvision.models.resnet18(weights=None)
    resnet.fc = nn.Linear(512, len(classes))
    meta = {
        "architecture": "resnet18",
        "classes": classes,
        "preprocessing": Preprocessing.for_model("resnet18", 32).to_dict(),
    }
    folder = tmp_path / name
    meta = save_custom_model(ResNetWithEmbedding(resnet), meta, folder)
    for file in ("model.pt", "model.json"):
        with open(folder / file, "rb") as f:
            store.write_stream(f"models/_/{name}/run/{file}", f)
    return RegisteredWeights(name, 1, "resnet18", f"models/_/{name}/run/model.pt", meta["weights_sha256"])


def test_a_model_loads_once_and_the_least_recently_used_goes(store, tmp_path):
    cache = CustomModelCache("cpu", plan_for("cpu"), size=2)
    a, b, c = (_saved(store, tmp_path, n, ["x", "y", "z"][: 2 + i % 2], seed=i) for i, n in enumerate("abc"))
    first = cache.get(a)
    assert cache.get(a) is first and cache.loads == 1
    assert (first.labels, first.custom, first.weights_name, first.key) == (
        ["x", "y"],
        "a:1",
        a.weights_sha256,
        f"custom:{a.weights_sha256}",
    )
    logits, embedding = first.net(first.transform(torch.zeros(3, 40, 40, dtype=torch.uint8)).unsqueeze(0))
    assert logits.shape == (1, 2) and embedding.shape == (1, 512)
    cache.get(b)
    cache.get(a)  # a is now the most recently used
    cache.get(c)  # evicts b
    assert cache.loaded() == ["a:1", "c:1"] and cache.loads == 3
    cache.get(b)
    assert cache.loads == 4 and cache.loaded() == ["c:1", "b:1"]


def test_weights_that_do_not_match_the_registry_are_refused(store, tmp_path):
    entry = _saved(store, tmp_path, "tampered", ["x", "y"], seed=0)
    other = RegisteredWeights("tampered", 1, "resnet18", entry.weights_key, "f" * 64)
    with pytest.raises(ModelUnavailable, match="the registry records f+"):
        CustomModelCache("cpu", plan_for("cpu"), size=1).get(other)
    store.delete_prefix("models/_/tampered")
    with pytest.raises(ModelUnavailable, match="its files are gone from storage"):
        CustomModelCache("cpu", plan_for("cpu"), size=1).get(entry)
