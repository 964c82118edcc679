"""On-disk cache of quantized models, keyed by weights, engine, recipe, calibration set and library versions.

Layout: <root>/<model>/<weights sha256[:16]>-<engine>-<calibration sha256[:16]>-<recipe and versions hash[:8]>/
holding the engine's artefact and meta.json (the full key). The root defaults to
$TORCH_HOME/imagebatch-int8, beside the hub's weights, so every worker on a host (or sharing that
volume) quantizes a model once. Entries are written to a temporary directory and renamed into place,
and an flock on <entry>.lock makes concurrent workers wait for the first quantization instead of
repeating it.
"""

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from imagebatch.worker.modeltools.calibration import CalibrationSet
from imagebatch.worker.modeltools.int8 import DEFAULT_ENGINE, engine_class, engine_recipe
from imagebatch.worker.modeltools.int8_engine import Int8Model, Recipe

logger = logging.getLogger(__name__)

META = "meta.json"
FORMAT = 2  # bump when the layout or the engines' recipes change (2: OpenVINO with full bias correction)
# The libraries whose version changes an engine's artefact or makes it unreadable.
_ENGINE_LIBRARIES = {
    "onnxruntime": ("torch", "onnx", "onnxruntime"),
    "openvino": ("torch", "onnx", "openvino", "nncf"),
    "fx": ("torch",),
    "pt2e": ("torch", "torchao"),
}


def default_root() -> Path:
    return Path(torch.hub.get_dir()) / "imagebatch-int8"


def library_versions(engine: str) -> dict[str, str]:
    return {name: metadata.version(name) for name in _ENGINE_LIBRARIES.get(engine, ("torch",))}


@dataclass(frozen=True)
class CacheKey:
    """Everything a quantized artefact depends on."""

    model: str
    weights_sha256: str
    engine: str
    calibration_sha256: str
    versions: tuple[tuple[str, str], ...]
    recipe: tuple[tuple[str, bool], ...] = ()  # the engine's CPU-dependent settings (one cache may serve many CPUs)
    format: int = FORMAT

    @classmethod
    def of(cls, model: str, weights_sha256: str, engine: str, calibration_sha256: str, recipe: Recipe) -> "CacheKey":
        versions = tuple(sorted(library_versions(engine).items()))
        return cls(model, weights_sha256, engine, calibration_sha256, versions, tuple(sorted(recipe.items())))

    def entry_name(self) -> str:
        versions = hashlib.sha256(json.dumps([self.versions, self.recipe, self.format]).encode()).hexdigest()
        return f"{self.weights_sha256[:16]}-{self.engine}-{self.calibration_sha256[:16]}-{versions[:8]}"

    def as_json(self) -> dict:
        return asdict(self) | {"versions": dict(self.versions), "recipe": dict(self.recipe)}


@dataclass(frozen=True)
class CachedModel:
    model: Int8Model
    path: Path  # the entry's directory
    hit: bool  # loaded from the cache rather than quantized now
    recipe: Recipe  # what the engine quantized with on this CPU


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load(key: CacheKey, entry: Path) -> Int8Model | None:
    try:
        if json.loads((entry / META).read_text())["key"] != key.as_json():
            raise ValueError("meta.json names another key")
        return engine_class(key.engine).load(entry)
    except Exception as exc:  # a damaged entry is rebuilt rather than failing every job
        logger.warning("int8 cache entry %s unreadable (%s: %s); quantizing again", entry, type(exc).__name__, exc)
        return None


def _store(key: CacheKey, model: Int8Model, entry: Path, meta: dict) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        model.save(staging)
        (staging / META).write_text(json.dumps({"key": key.as_json(), **meta}, indent=1))
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(staging, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cached_quantize(
    net: nn.Module,
    calibration: CalibrationSet,
    *,
    model_name: str,
    weights_sha256: str,
    engine: str = DEFAULT_ENGINE,
    root: Path | None = None,
    vnni: bool | None = None,
) -> CachedModel:
    """The int8 model for (weights, engine, calibration) on this CPU: loaded from the cache, or quantized and
    stored; Int8Unsupported when the engine refuses this CPU (`vnni`: whether it has VNNI, detected when None)."""
    cls, recipe = engine_recipe(engine, vnni)
    key = CacheKey.of(model_name, weights_sha256, engine, calibration.sha256, recipe)
    entry = (root or default_root()) / model_name / key.entry_name()
    with _locked(entry.with_name(entry.name + ".lock")):
        if entry.is_dir() and (model := _load(key, entry)) is not None:
            logger.info("int8 %s for %s loaded from %s", engine, model_name, entry)
            return CachedModel(model, entry, hit=True, recipe=recipe)
        started = time.perf_counter()
        model = cls.quantize(net, calibration.batches, recipe)
        seconds = time.perf_counter() - started
        _store(
            key, model, entry, {"quantize_seconds": round(seconds, 2), "calibration_images": list(calibration.sources)}
        )
        logger.info("quantized %s with %s in %.1fs; cached in %s", model_name, engine, seconds, entry)
        return CachedModel(model, entry, hit=False, recipe=recipe)
