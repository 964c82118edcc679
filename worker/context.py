"""A worker process's resources, made once at start-up and handed to every chunk (arq's startup context)."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from celery import Celery
from prometheus_client import CollectorRegistry

from imagebatch.core.config import DECODE_MODES, Settings
from imagebatch.worker.custom_models import CustomModelCache, RegisteredWeights
from imagebatch.worker.devices import Capabilities, detect_capabilities, resolve_device
from imagebatch.worker.fetch import Fetcher
from imagebatch.worker.gpu import DevicePlan, plan_for
from imagebatch.worker.int8_models import Int8Models
from imagebatch.worker.liveness import new_worker_id
from imagebatch.worker.metrics import WorkerMetrics
from imagebatch.worker.models import LoadedModel, ModelRegistry
from imagebatch.worker.prefetch import CpuSplit, ForwardGate, cpu_split
from imagebatch.worker.preprocess import Decoder, PixelBudget, RenditionMaker, fast_decode
from imagebatch.worker.reader import Reader

_APP_ATTRIBUTE = "imagebatch_context"


class WorkerContextMissing(RuntimeError):
    """A chunk task ran in a process that never built its worker context."""


@dataclass
class WorkerContext:
    """Everything a chunk needs besides its rows; one per worker process, shared by its chunk threads."""

    settings: Settings
    capabilities: Capabilities
    device: str
    plan: DevicePlan
    decode_mode: str  # IMAGEBATCH_DECODE_MODE: for jobs stored before they carried their own
    renditions: RenditionMaker  # IMAGEBATCH_THUMBNAIL_SIZE, IMAGEBATCH_PREVIEW_SIZE
    split: CpuSplit  # forwards at once, torch threads each
    models: ModelRegistry
    custom_models: CustomModelCache  # registered custom models, loaded on first use
    int8: Int8Models  # int8 versions of those models, quantized on a job's first int8 chunk
    gate: ForwardGate
    fetcher: Fetcher
    decode_pool: ThreadPoolExecutor
    pixel_budget: PixelBudget  # IMAGEBATCH_DECODE_PIXEL_BUDGET, shared by every decoder of the process
    reader: Reader
    metrics: WorkerMetrics
    # This process's name in its claims and heartbeats (worker.liveness).
    worker_id: str = field(default_factory=new_worker_id)
    # Set when the worker begins a warm shutdown: chunks not yet written stop and are handed back.
    stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    # Training jobs running in this process (TRAIN_SLOTS): one more waits on the queue, not in a thread here.
    training_slots: threading.BoundedSemaphore = field(init=False, repr=False)
    _decoders: dict[tuple[str, str], Decoder] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        device: str | None = None,
        capabilities: Capabilities | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> "WorkerContext":
        """Resources from `settings` (device: instead of IMAGEBATCH_DEVICE); no model loads yet.

        ValueError names the setting when one is invalid. Without `metrics` the instruments go to
        a registry of their own, so contexts built side by side (tests, the benchmark) do not clash.
        """
        capabilities = capabilities or detect_capabilities()
        device = resolve_device(device or settings.DEVICE, capabilities)
        fast_decode(settings.DECODE_MODE)  # a bad setting stops the worker here, naming it
        plan = plan_for(device, settings.COMPILE, settings.GPU_DECODE)
        split = cpu_split(
            torch.device(device).type, settings.WORKER_CONCURRENCY, settings.FORWARD_SLOTS, settings.TORCH_THREADS
        )
        fetcher = Fetcher(settings)
        pool = ThreadPoolExecutor(
            max_workers=settings.DECODE_THREADS or os.cpu_count() or 1, thread_name_prefix="decode"
        )
        return cls(
            settings=settings,
            capabilities=capabilities,
            device=device,
            plan=plan,
            decode_mode=settings.DECODE_MODE.strip().lower(),
            renditions=RenditionMaker(settings.THUMBNAIL_SIZE, settings.PREVIEW_SIZE),
            split=split,
            models=ModelRegistry(device, plan),
            custom_models=CustomModelCache(device, plan, settings.CUSTOM_MODEL_CACHE),
            int8=Int8Models(
                settings.INT8_ENGINE,
                settings.INT8_CALIBRATION_IMAGES,
                streams=split.forward_slots,
                vnni=capabilities.cpu_vnni,
            ),
            gate=ForwardGate(split.forward_slots),
            fetcher=fetcher,
            decode_pool=pool,
            pixel_budget=PixelBudget(settings.DECODE_PIXEL_BUDGET),
            reader=Reader(settings, fetcher, pool),
            metrics=metrics if metrics is not None else WorkerMetrics(CollectorRegistry()),
        )

    def __post_init__(self) -> None:
        self.training_slots = threading.BoundedSemaphore(self.settings.TRAIN_SLOTS)

    def model_for(self, name: str, custom: RegisteredWeights | None = None) -> LoadedModel:
        """A built-in model by name, or the registered custom model (whose base architecture is `name`)."""
        return self.custom_models.get(custom) if custom is not None else self.models.get(name)

    def decoder(self, model: LoadedModel, mode: str) -> Decoder:
        """The model's preprocessing on this device in decode mode `mode` (a job's), made once per model and mode."""
        if mode not in DECODE_MODES:
            raise ValueError(f"decode must be fast or exact (got {mode!r})")
        key = (model.key, mode)
        with self._lock:
            if key not in self._decoders:
                fast = mode == "fast"
                self._decoders[key] = self.plan.decoder(model.transform, fast, self.renditions, self.pixel_budget)
            return self._decoders[key]

    def close(self) -> None:
        """Let running decodes finish, then release the decode threads and the HTTP client."""
        self.decode_pool.shutdown(wait=True)
        self.fetcher.close()

    def attach(self, app: Celery) -> None:
        """Make this the context of `app`'s chunk tasks in this process (at worker start-up)."""
        setattr(app, _APP_ATTRIBUTE, self)

    @staticmethod
    def find(app: Celery) -> "WorkerContext | None":
        return getattr(app, _APP_ATTRIBUTE, None)

    @classmethod
    def of(cls, app: Celery) -> "WorkerContext":
        """The context attached to `app`; WorkerContextMissing when this process never built one."""
        context = cls.find(app)
        if context is None:
            raise WorkerContextMissing(
                "no worker context in this process: chunk tasks run only in a worker started with "
                "`imagebatch worker` or `python -m imagebatch.worker`, which builds it at start-up "
                "(imagebatch.worker.main)"
            )
        return context
