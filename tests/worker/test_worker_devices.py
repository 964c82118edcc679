"""Device and precision selection for every branch, with hardware capabilities written by hand."""

from pathlib import Path

import pytest
import torch

from imagebatch.worker.devices import Capabilities, Precision, cpu_has_vnni, resolve_device, resolve_precision

CPU_PLAIN = Capabilities(cuda=False, cpu_bf16=False)
CPU_BF16 = Capabilities(cuda=False, cpu_bf16=True)
GPU_AMPERE = Capabilities(cuda=True, cuda_bf16=True, cpu_bf16=True)
GPU_OLD = Capabilities(cuda=True, cuda_bf16=False)


@pytest.mark.parametrize(
    ("requested", "device", "caps", "resolved", "fell_back"),
    [
        ("fp32", "cpu", CPU_BF16, "fp32", False),
        ("fp32", "cuda", GPU_AMPERE, "fp32", False),
        ("auto", "cuda", GPU_AMPERE, "fp16", False),
        ("auto", "cuda:1", GPU_OLD, "fp16", False),
        ("auto", "cpu", CPU_BF16, "bf16", False),
        ("auto", "cpu", CPU_PLAIN, "fp32", False),
        ("auto", "cpu", GPU_AMPERE, "bf16", False),  # a GPU host told to use its CPU
        ("bf16", "cpu", CPU_PLAIN, "bf16", False),  # asked for explicitly: emulated, but honoured
        ("bf16", "cuda", GPU_AMPERE, "bf16", False),
        ("bf16", "cuda", GPU_OLD, "fp16", True),
        ("fp16", "cuda", GPU_OLD, "fp16", False),
        ("fp16", "cpu", CPU_BF16, "bf16", True),
        ("fp16", "cpu", CPU_PLAIN, "fp32", True),
        ("", "cpu", CPU_PLAIN, "fp32", False),  # empty means auto
    ],
)
def test_precision_resolution(requested: str, device: str, caps: Capabilities, resolved: str, fell_back: bool) -> None:
    precision = resolve_precision(requested, device, caps)
    assert precision.resolved == resolved
    assert precision.device_type == torch.device(device).type
    assert (precision.note is not None) == fell_back


def test_unknown_precision_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16 or int8"):
        resolve_precision("int4", "cpu", CPU_PLAIN)


def test_int8_runs_on_the_cpu_and_auto_never_picks_it() -> None:
    assert resolve_precision("int8", "cpu", CPU_PLAIN).resolved == "int8"
    assert resolve_precision("int8", "cpu", CPU_PLAIN).autocast().__class__.__name__ == "nullcontext"
    assert all(resolve_precision("auto", "cpu", caps).resolved != "int8" for caps in (CPU_PLAIN, GPU_OLD))
    # The engines are CPU runtimes: a GPU worker says so instead of running something else under the name.
    with pytest.raises(ValueError, match="int8 runs on the CPU only"):
        resolve_precision("int8", "cuda", GPU_AMPERE)


@pytest.mark.parametrize(
    ("requested", "caps", "device"),
    [
        ("auto", CPU_PLAIN, "cpu"),
        ("auto", GPU_OLD, "cuda"),
        ("cpu", GPU_AMPERE, "cpu"),
        ("cuda:1", GPU_OLD, "cuda:1"),
        ("AUTO", CPU_BF16, "cpu"),
    ],
)
def test_device_resolution(requested: str, caps: Capabilities, device: str) -> None:
    assert resolve_device(requested, caps) == device


def test_cuda_requested_without_a_gpu_is_an_error() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda", CPU_BF16)


def test_autocast_contexts_match_the_resolved_precision() -> None:
    x = torch.randn(4, 4)
    with Precision("bf16", "bf16", "cpu").autocast():
        assert (x @ x).dtype == torch.bfloat16
    with Precision("fp32", "fp32", "cpu").autocast():
        assert (x @ x).dtype == torch.float32
    assert Precision("auto", "fp16", "cuda").dtype == torch.float16


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads the CPU's flags from Linux's /proc/cpuinfo")
def test_vnni_detection_agrees_with_the_cpu_flags() -> None:
    """torch's checks and the kernel's flag list, read independently here, tell the same story."""
    text = Path("/proc/cpuinfo").read_text()
    flags = set(next(line for line in text.splitlines() if line.startswith("flags")).split(":", 1)[1].split())
    assert cpu_has_vnni() == bool(flags & {"avx512_vnni", "avx_vnni", "amx_tile", "amx_int8"})
