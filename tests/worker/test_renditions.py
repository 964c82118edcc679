"""Thumbnails and previews made while decoding: sizes, orientation, which formats get a preview, the GPU path."""

import io
import time

import numpy as np
import pytest
from PIL import Image

from imagebatch.core.renditions import BROWSER_FORMATS, needs_preview
from imagebatch.worker.gpu import DevicePlan, plan_for
from imagebatch.worker.preprocess import Decoder, RenditionMaker
from imagebatch.worker.preprocess.renditions import fitted
from tests.harness.images import photo

MAKER = RenditionMaker(thumbnail_size=256, preview_size=1024)


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


@pytest.fixture(scope="module")
def decoder(resnet18) -> Decoder:
    return plan_for("cpu").decoder(resnet18.transform, fast=False, renditions=MAKER)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP"])
def test_browser_formats_get_a_thumbnail_and_no_preview(decoder, fmt) -> None:
    source = photo(640, 480, seed=1)
    decoded = decoder(_encoded(source if fmt != "GIF" else source.convert("P"), fmt))
    assert decoded.format == fmt and decoded.renditions.preview is None
    thumb = _open(decoded.renditions.thumbnail)
    assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (256, 192))


def test_a_tiff_gets_a_bounded_preview_of_the_same_picture(decoder) -> None:
    source = photo(1600, 900, seed=2)
    decoded = decoder(_encoded(source, "TIFF"))
    preview, thumb = _open(decoded.renditions.preview), _open(decoded.renditions.thumbnail)
    assert (preview.format, preview.size, thumb.size) == ("JPEG", (1024, 576), (256, 144))
    expected = source.resize((1024, 576), Image.Resampling.BICUBIC)
    assert _mean_difference(preview, expected) < 4  # the same picture, within JPEG's loss


def test_small_images_are_not_enlarged_and_a_small_tiff_preview_keeps_its_size(decoder) -> None:
    decoded = decoder(_encoded(photo(120, 80, seed=3), "TIFF"))
    assert _open(decoded.renditions.thumbnail).size == (120, 80) == _open(decoded.renditions.preview).size
    one = decoder(_encoded(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"))
    assert _open(one.renditions.thumbnail).size == (1, 1)


def test_thumbnails_follow_exif_orientation(decoder) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    decoded = decoder(_encoded(photo(640, 400, seed=4), "JPEG", exif=exif))
    assert (decoded.width, decoded.height) == (400, 640)
    assert _open(decoded.renditions.thumbnail).size == (160, 256)


def test_draft_decoded_phone_photo_still_gets_a_full_size_thumbnail(bench_photos, resnet18) -> None:
    fast = plan_for("cpu").decoder(resnet18.transform, fast=True, renditions=MAKER)
    decoded = fast(bench_photos[7].read_bytes())  # 4032 x 3024, decoded at reduced scale
    assert max(_open(decoded.renditions.thumbnail).size) == 256


def test_a_thin_image_gets_a_thin_thumbnail_quickly(decoder) -> None:
    """80,000,000 x 1 pixels (the API used to decode this per request): one reduction, a 256 x 1 JPEG."""
    thin = Image.new("L", (80_000_000, 1), 128)
    began = time.perf_counter()
    renditions = MAKER(thin.convert("RGB"), "PNG")
    assert time.perf_counter() - began < 5
    assert _open(renditions.thumbnail).size == (256, 1)


def test_no_renditions_without_a_maker(resnet18) -> None:
    plain = plan_for("cpu").decoder(resnet18.transform)
    assert plain(_encoded(photo(64, 64, seed=5), "PNG")).renditions is None


def test_gpu_decoded_jpegs_get_their_thumbnail_from_the_tensor(resnet18) -> None:
    """The nvJPEG path's thumbnail, run with torchvision's CPU JPEG decoder standing in for the GPU."""
    cuda_like = DevicePlan(device="cpu", uint8_input=True, pin_memory=False, compile=False, gpu_decode=False)
    host = cuda_like.decoder(resnet18.transform).transform
    data = _encoded(photo(640, 480, seed=6), "JPEG", quality=95)
    on_device = Decoder(host, gpu_device="cpu", renditions=MAKER)(data)
    pillow = Decoder(host, renditions=MAKER)(data)
    a, b = _open(on_device.renditions.thumbnail), _open(pillow.renditions.thumbnail)
    assert a.size == b.size == (256, 192) and on_device.renditions.preview is None
    assert _mean_difference(a, b) < 4


def test_which_formats_need_a_preview() -> None:
    assert not any(needs_preview(fmt) for fmt in BROWSER_FORMATS)
    assert all(needs_preview(fmt) for fmt in ("TIFF", "ICO", "PPM", "TGA", "JPEG2000"))


@pytest.mark.parametrize(
    ("size", "longest", "expected"),
    [((1600, 900), 1024, (1024, 576)), ((80_000_000, 1), 256, (256, 1)), ((200, 320), 256, (160, 256))],
)
def test_fitted_sizes_keep_the_aspect(size, longest, expected) -> None:
    assert fitted(size, longest) == expected
    assert fitted((100, 50), 256) is None
