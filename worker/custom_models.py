"""Registered custom models in a worker: fetched from the blob store, checked, loaded on first use, LRU-bounded."""

import logging
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from imagebatch.core.catalog import MODELS
from imagebatch.core.storage import get_store
from imagebatch.worker.gpu import DevicePlan
from imagebatch.worker.models import LoadedModel, ModelUnavailable, serving_net
from imagebatch.worker.training import CustomModelError, load_custom_model
from imagebatch.worker.training.calibration_sample import CALIBRATION_DIR
from imagebatch.worker.training.model import META_NAME, WEIGHTS_NAME

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredWeights:
    """What the registry says of one version: where its files are and what their hash must be."""

    name: str
    version: int
    base_model: str
    weights_key: str  # blob key of model.pt; model.json lies beside it
    weights_sha256: str

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


def meta_key(weights_key: str) -> str:
    return f"{weights_key.rsplit('/', 1)[0]}/{META_NAME}"


def calibration_keys(weights_key: str, meta: dict) -> tuple[str, ...]:
    """Blob keys of the training sample kept for int8 calibration; empty for a model trained before it was."""
    folder = weights_key.rsplit("/", 1)[0]
    return tuple(f"{folder}/{CALIBRATION_DIR}/{name}" for name in meta.get("calibration", {}).get("files", []))


def load_registered(entry: RegisteredWeights, device: str, plan: DevicePlan) -> LoadedModel:
    """Fetch model.pt and model.json, check the weights' SHA-256 against the registry's, build the net."""
    store = get_store()
    with tempfile.TemporaryDirectory(prefix="imagebatch-model-") as tmp:
        folder = Path(tmp)
        try:
            (folder / WEIGHTS_NAME).write_bytes(store.read_bytes(entry.weights_key))
            (folder / META_NAME).write_bytes(store.read_bytes(meta_key(entry.weights_key)))
        except FileNotFoundError as exc:
            raise ModelUnavailable(f"custom model {entry.ref}: its files are gone from storage ({exc})") from exc
        try:
            net, transform, classes, meta = load_custom_model(folder, device)
        except CustomModelError as exc:
            raise ModelUnavailable(f"custom model {entry.ref} cannot be loaded: {exc}") from exc
    if meta["weights_sha256"] != entry.weights_sha256:
        raise ModelUnavailable(
            f"custom model {entry.ref}: stored weights have SHA-256 {meta['weights_sha256']}, "
            f"the registry records {entry.weights_sha256}"
        )
    net = net.to(memory_format=torch.channels_last)
    logger.info("loaded custom model %s (%s, %d classes) on %s", entry.ref, entry.base_model, len(classes), device)
    return LoadedModel(
        spec=MODELS[entry.base_model],
        weights=None,
        net=net,
        forward_net=serving_net(net, plan),
        transform=transform,
        labels=classes,
        weights_path=Path(entry.weights_key),
        weights_sha256=entry.weights_sha256,
        device=device,
        plan=plan,
        custom=entry.ref,
        calibration_keys=calibration_keys(entry.weights_key, meta),
    )


class CustomModelCache:
    """At most `size` custom models in memory, each loaded once per process; the least recently used goes."""

    def __init__(self, device: str, plan: DevicePlan, size: int) -> None:
        self.device, self.plan, self.size = device, plan, size
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was loaded (tests: once per process unless evicted)

    def _cached(self, sha: str) -> LoadedModel | None:
        with self._lock:
            model = self._loaded.get(sha)
            if model is not None:
                self._loaded.move_to_end(sha)
            return model

    def get(self, entry: RegisteredWeights) -> LoadedModel:
        """The loaded model; ModelUnavailable when its files are missing or do not match the registry."""
        if (model := self._cached(entry.weights_sha256)) is not None:
            return model
        with self._lock:
            loading = self._loading.setdefault(entry.weights_sha256, threading.Lock())
        with loading:  # one load per model; a chunk of another model does not wait for it
            if (model := self._cached(entry.weights_sha256)) is not None:
                return model
            model = load_registered(entry, self.device, self.plan)
            with self._lock:
                self.loads += 1
                self._loaded[entry.weights_sha256] = model
                while len(self._loaded) > self.size:
                    evicted, _ = self._loaded.popitem(last=False)
                    logger.info("custom model %s evicted (CUSTOM_MODEL_CACHE=%d)", evicted[:12], self.size)
        return model

    def loaded(self) -> list[str]:
        with self._lock:
            return [model.custom or "" for model in self._loaded.values()]
