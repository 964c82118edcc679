"""int8 versions of the served models: quantized on first use per (model, weights, engine), then cached on disk."""

import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from imagebatch.core.storage import get_store
from imagebatch.worker.models import LoadedModel, ModelUnavailable
from imagebatch.worker.modeltools.calibration import CalibrationSet, calibration_set
from imagebatch.worker.modeltools.int8_engine import Int8Model
from imagebatch.worker.samples import write_sample_photos

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Int8Served:
    """A quantized model ready to run, and what the reproducibility record says about it."""

    model: Int8Model  # called like the float net: (logits, embedding)
    engine: str
    recipe: dict[str, bool]  # the engine's CPU-dependent settings (ONNX Runtime's 7-bit weights without VNNI)
    calibration: str  # which images: the project's sample photos, or the custom model's training sample
    calibration_sha256: str  # of the preprocessed float32 calibration tensors, in order
    calibration_images: int
    cache_entry: Path  # the on-disk cache entry: Int8Model.load() of it gives another instance (another thread count)

    def record(self) -> dict:
        return {
            "int8_engine": self.engine,
            "int8_recipe": self.recipe,
            "calibration_set": self.calibration,
            "calibration_sha256": self.calibration_sha256,
            "calibration_images": self.calibration_images,
        }


def _builtin_calibration(model: LoadedModel, count: int, folder: Path) -> tuple[str, CalibrationSet]:
    paths = write_sample_photos(folder, count)
    return f"imagebatch sample photos (worker/samples.py, first {count})", calibration_set(paths, model.transform)


def _custom_calibration(model: LoadedModel, folder: Path) -> tuple[str, CalibrationSet]:
    if not model.calibration_keys:
        raise ModelUnavailable(
            f"custom model {model.custom} has no int8 calibration sample (it was trained before models kept "
            "one): train it again to run it at int8, or submit fp32 or bf16"
        )
    store, paths = get_store(), []
    for i, key in enumerate(model.calibration_keys):
        path = folder / f"{i:04d}-{key.rsplit('/', 1)[-1]}"
        try:
            path.write_bytes(store.read_bytes(key))
        except FileNotFoundError as exc:
            raise ModelUnavailable(f"custom model {model.custom}: its calibration images are gone ({exc})") from exc
        paths.append(path)
    name = f"training sample of {model.custom} ({len(paths)} images, kept at registration)"
    return name, calibration_set(paths, model.transform)


class Int8Models:
    """One int8 model per served model in this process; the on-disk cache spares other processes the quantization."""

    def __init__(
        self,
        engine: str,
        calibration_images: int,
        cache_root: Path | None = None,
        streams: int = 1,
        vnni: bool | None = None,
    ) -> None:
        """`streams`: forwards this process runs at once (its forward slots), each to run side by side.
        `vnni`: whether the CPU has an int8 dot product (detected when None)."""
        from imagebatch.worker.devices import cpu_has_vnni
        from imagebatch.worker.modeltools.int8 import engine_class

        # An unknown IMAGEBATCH_INT8_ENGINE stops the worker at start-up, naming it; one that refuses this
        # CPU leaves the worker serving float jobs, and its int8 jobs fail saying why.
        self.vnni = cpu_has_vnni() if vnni is None else vnni
        if reason := engine_class(engine).refusal(self.vnni):
            logger.warning("int8 jobs will fail on this worker: %s", reason)
        self.engine, self.calibration_images, self.cache_root = engine, calibration_images, cache_root
        self.streams = streams
        self._built: dict[tuple[str, str], Int8Served] = {}
        self._building: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, model: LoadedModel) -> Int8Served:
        """The int8 version of `model`; ModelUnavailable (with the reason) when this worker cannot make one."""
        key = (model.key, model.weights_sha256)
        with self._lock:
            if key in self._built:
                return self._built[key]
            building = self._building.setdefault(key, threading.Lock())
        with building:  # chunks of the same model wait for one quantization; other models do not
            with self._lock:
                if key in self._built:
                    return self._built[key]
            served = self._build(model)
            with self._lock:
                self._built[key] = served
        return served

    def _build(self, model: LoadedModel) -> Int8Served:
        try:
            from imagebatch.worker.modeltools.int8_cache import cached_quantize
            from imagebatch.worker.modeltools.int8_engine import Int8Unsupported
        except ImportError as exc:  # the engines are optional extras of the worker
            raise ModelUnavailable(f"int8 is not installed on this worker ({exc}): install imagebatch[worker]") from exc
        with tempfile.TemporaryDirectory(prefix="imagebatch-calibration-") as tmp:
            if model.custom:
                name, calibration = _custom_calibration(model, Path(tmp))
            else:
                name, calibration = _builtin_calibration(model, self.calibration_images, Path(tmp))
        try:
            cached = cached_quantize(
                model.net,
                calibration,
                model_name=model.custom or model.spec.name,
                weights_sha256=model.weights_sha256,
                engine=self.engine,
                root=self.cache_root,
                vnni=self.vnni,
            )
        except Int8Unsupported as exc:
            raise ModelUnavailable(f"this worker cannot run int8: {exc}") from exc
        except Exception as exc:  # engine import or a failed conversion: the job says why
            logger.exception("int8 quantization of %s with %s failed", model.key, self.engine)
            raise ModelUnavailable(
                f"this worker cannot run int8 with engine {self.engine} ({type(exc).__name__}: {str(exc)[:300]}); "
                "submit fp32 or bf16, or set IMAGEBATCH_INT8_ENGINE to another engine"
            ) from exc
        logger.info("int8 %s ready for %s (%s)", self.engine, model.key, "cache hit" if cached.hit else "quantized")
        model_for_slots = cached.model.with_streams(self.streams)
        return Int8Served(
            model_for_slots, self.engine, cached.recipe, name, calibration.sha256, calibration.size, cached.path
        )
