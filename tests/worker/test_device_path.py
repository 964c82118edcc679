"""CUDA path selection and its arithmetic, checked on the CPU (no pretend GPU runs)."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from imagebatch.worker.gpu import DevicePlan, maybe_compile, plan_for, to_model_input
from imagebatch.worker.preprocess import Decoder, NumpyNormalize, Uint8Transform, is_jpeg

# The CUDA plan's host half on the CPU: uint8 tensors, normalized after the copy.
CUDA_LIKE = DevicePlan(device="cpu", uint8_input=True, pin_memory=False, compile=False, gpu_decode=False)


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_devices_get_the_transfer_saving_path(device) -> None:
    plan = plan_for(device, compile_model=True, gpu_decode=True)
    assert plan.uint8_input and plan.pin_memory and plan.compile and plan.gpu_decode
    assert not plan_for(device).compile and not plan_for(device).gpu_decode  # extras stay opt-in


def test_cpu_keeps_the_exact_float_path_whatever_the_settings(resnet18, worker_ctx) -> None:
    plan = plan_for("cpu", compile_model=True, gpu_decode=True)
    assert not (plan.uint8_input or plan.pin_memory or plan.compile or plan.gpu_decode)
    decoder = plan.decoder(resnet18.transform)
    assert isinstance(decoder.transform, NumpyNormalize) and decoder.gpu_device is None
    assert worker_ctx.decoder(resnet18, "exact") is worker_ctx.decoder(resnet18, "exact")  # made once per model
    assert maybe_compile(resnet18.net, plan) is resnet18.net


def test_cpu_host_transform_equals_weights_transforms_bit_for_bit(bench_photos, resnet18) -> None:
    cpu = plan_for("cpu").decoder(resnet18.transform).transform
    assert repr(cpu) == repr(resnet18.transform)  # what the reproducibility record shows
    for path in bench_photos:  # JPEGs, a phone photo, a PNG
        image = Image.open(path).convert("RGB")
        assert torch.equal(cpu(image), resnet18.transform(image)), path.name


def test_uint8_transfer_then_normalizing_equals_weights_transforms(bench_photos, resnet18) -> None:
    """The CUDA plan's host half + device half reproduce weights.transforms() bit for bit (run on CPU)."""
    uint8 = CUDA_LIKE.decoder(resnet18.transform).transform
    assert isinstance(uint8, Uint8Transform) and uint8.resize_size == [256]
    images = [Image.open(p).convert("RGB") for p in bench_photos[:3]]
    small = [uint8(im) for im in images]
    assert all(t.dtype == torch.uint8 and t.shape == (3, 224, 224) for t in small)
    batch = to_model_input(small, resnet18.transform, CUDA_LIKE)
    expected = torch.stack([resnet18.transform(im) for im in images])
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch, expected)


def test_device_jpeg_decode_keeps_header_facts_and_the_crop(resnet18) -> None:
    """IMAGEBATCH_GPU_DECODE's path, with torchvision's JPEG decoder on the CPU standing in for nvJPEG."""
    image = Image.new("RGB", (640, 400), (200, 30, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90: reads as 400 x 640
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    data = buffer.getvalue()
    decoded = Decoder(CUDA_LIKE.decoder(resnet18.transform).transform, gpu_device="cpu")(data)
    pillow = Decoder(CUDA_LIKE.decoder(resnet18.transform).transform)(data)
    assert (decoded.width, decoded.height, decoded.mode, decoded.format) == (400, 640, "RGB", "JPEG")
    assert (pillow.width, pillow.height) == (400, 640)
    assert decoded.tensor.dtype == torch.uint8 and decoded.tensor.shape == (3, 224, 224)
    assert np.allclose(decoded.mean, pillow.mean, atol=2) and max(decoded.std) < 3
    with pytest.raises(ValueError, match="uint8 host transform"):
        Decoder(plan_for("cpu").decoder(resnet18.transform).transform, gpu_device="cpu")


def test_jpeg_detection_by_magic_bytes(bench_photos) -> None:
    assert is_jpeg(bench_photos[0].read_bytes())
    assert not is_jpeg(bench_photos[9].read_bytes())  # the PNG
