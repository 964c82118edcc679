"""CUDA path selection and its arithmetic, checked on the CPU (no pretend GPU runs)."""

import pytest
import torch
from PIL import Image

from imagebatch.worker.gpu import Uint8Transform, host_transform, is_jpeg, maybe_compile, plan_for, to_model_input


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_devices_get_the_transfer_saving_path(device) -> None:
    plan = plan_for(device, compile_model=True, gpu_decode=True)
    assert plan.uint8_input and plan.pin_memory and plan.compile and plan.gpu_decode
    assert not plan_for(device).compile and not plan_for(device).gpu_decode  # extras stay opt-in


def test_cpu_keeps_the_exact_float_path_whatever_the_settings(resnet18) -> None:
    plan = plan_for("cpu", compile_model=True, gpu_decode=True)
    assert not (plan.uint8_input or plan.pin_memory or plan.compile or plan.gpu_decode)
    assert host_transform(resnet18.transform, plan) is host_transform(resnet18.transform, plan)  # made once
    assert host_transform(resnet18.transform, plan, True) is not host_transform(resnet18.transform, plan)
    assert maybe_compile(resnet18.net, plan) is resnet18.net


def test_cpu_host_transform_equals_weights_transforms_bit_for_bit(bench_photos, resnet18) -> None:
    cpu = host_transform(resnet18.transform, plan_for("cpu"))
    assert repr(cpu) == repr(resnet18.transform)  # what the reproducibility record shows
    for path in bench_photos:  # JPEGs, a phone photo, a PNG
        image = Image.open(path).convert("RGB")
        assert torch.equal(cpu(image), resnet18.transform(image)), path.name


def test_uint8_transfer_then_normalizing_equals_weights_transforms(bench_photos, resnet18) -> None:
    """The CUDA plan's host half + device half reproduce weights.transforms() bit for bit (run on CPU)."""
    cuda_like = plan_for("cpu").__class__(device="cpu", uint8_input=True, pin_memory=False,
                                          compile=False, gpu_decode=False)
    uint8 = host_transform(resnet18.transform, cuda_like)
    assert isinstance(uint8, Uint8Transform) and uint8.resize_size == [256]
    images = [Image.open(p).convert("RGB") for p in bench_photos[:3]]
    small = [uint8(im) for im in images]
    assert all(t.dtype == torch.uint8 and t.shape == (3, 224, 224) for t in small)
    batch = to_model_input(small, resnet18.transform, cuda_like)
    expected = torch.stack([resnet18.transform(im) for im in images])
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch, expected)


def test_jpeg_detection_by_magic_bytes(bench_photos) -> None:
    assert is_jpeg(bench_photos[0].read_bytes())
    assert not is_jpeg(bench_photos[9].read_bytes())  # the PNG
