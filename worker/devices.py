"""Device and precision selection: pure functions over injectable hardware capabilities."""

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

# int8 runs a quantized model (worker/int8_models.py), not autocast: its float parts stay as the engine made them.
PRECISION_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": None}


@dataclass(frozen=True)
class Capabilities:
    """What the hardware offers; detected once, or written by hand in tests."""

    cuda: bool
    cuda_bf16: bool = False
    cpu_bf16: bool = False
    cpu_vnni: bool = False  # an int8 dot product: the int8 engines' recipe, or refusal, depends on it


@dataclass(frozen=True)
class Precision:
    """How a forward pass runs: the requested and the resolved precision, and why they differ."""

    requested: str
    resolved: str  # fp32 | bf16 | fp16 | int8
    device_type: str  # cpu | cuda
    note: str | None = None

    @property
    def dtype(self) -> torch.dtype | None:
        return PRECISION_DTYPES[self.resolved]

    def autocast(self) -> AbstractContextManager:
        """torch.autocast for bf16/fp16; fp32 (and the int8 engines) run exactly as written."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: where bf16 autocast is faster than fp32 rather than emulated."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    if not torch.backends.mkldnn.is_available():
        return False
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def cpu_has_vnni() -> bool:
    """AVX-512 VNNI, AVX-VNNI or AMX: an int8 dot-product instruction. Without one, x86 int8 kernels
    multiply uint8 activations by int8 weights with VPMADDUBSW, whose 16-bit pairwise sums saturate
    (full-range weights lose accuracy there)."""
    checks = ("_is_vnni_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks) or "avx_vnni" in _cpu_flags()


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((set(line.split(":", 1)[1].split()) for line in cpuinfo if line.startswith("flags")), set())
    except OSError:
        return set()


def detect_capabilities() -> Capabilities:
    cuda = torch.cuda.is_available()
    return Capabilities(
        cuda=cuda,
        cuda_bf16=cuda and torch.cuda.is_bf16_supported(),
        cpu_bf16=cpu_has_native_bf16(),
        cpu_vnni=cpu_has_vnni(),
    )


def resolve_device(requested: str, caps: Capabilities) -> str:
    """'auto' means the first GPU when there is one; an explicit device is taken as given."""
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return "cuda" if caps.cuda else "cpu"
    if requested.startswith("cuda") and not caps.cuda:
        raise ValueError(f"IMAGEBATCH_DEVICE={requested} but CUDA is not available on this machine")
    return requested


def resolve_precision(requested: str, device: str, caps: Capabilities) -> Precision:
    """Map a job's precision option onto what this device can run, recording any fallback."""
    requested = (requested or "auto").strip().lower()
    device_type = torch.device(device).type
    on_cuda = device_type == "cuda"
    if requested == "fp32":
        return Precision(requested, "fp32", device_type)
    if requested == "auto":
        if on_cuda:
            return Precision(requested, "fp16", device_type)
        return Precision(requested, "bf16" if caps.cpu_bf16 else "fp32", device_type)
    if requested == "bf16":
        if on_cuda and not caps.cuda_bf16:
            return Precision(requested, "fp16", device_type, "this GPU has no bf16; used fp16")
        return Precision(requested, "bf16", device_type)
    if requested == "fp16":
        if on_cuda:
            return Precision(requested, "fp16", device_type)
        if caps.cpu_bf16:
            return Precision(requested, "bf16", device_type, "fp16 autocast needs CUDA; used bf16")
        return Precision(requested, "fp32", device_type, "fp16 needs CUDA and this CPU lacks bf16; used fp32")
    if requested == "int8":
        if on_cuda:
            # The int8 engines are CPU runtimes; silently running fp16 instead would mislabel the results.
            raise ValueError(
                f"int8 runs on the CPU only and this worker runs its models on {device}: "
                "submit fp16 or bf16, or run a worker with IMAGEBATCH_DEVICE=cpu for int8 jobs"
            )
        return Precision(requested, "int8", device_type)
    raise ValueError(f"unknown precision {requested!r}: use auto, fp32, bf16, fp16 or int8")
