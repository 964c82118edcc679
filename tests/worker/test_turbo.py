"""simplejpeg decode (worker/preprocess/turbo.py): Pillow's pixels, sizes and error categories; fast mode (reduced
decodes keeping 2.25x the resize, box-reduced large PNGs) within the published decode tolerance of the exact path."""

import io
from collections.abc import Callable
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps, ImageStat

from imagebatch.worker.devices import Precision
from imagebatch.worker.inference import infer
from imagebatch.worker.preprocess import DecodedImage, Decoder, NumpyNormalize, UnusableImage, turbo
from imagebatch.worker.preprocess.turbo import (
    FAST_DECODE_TOLERANCE,
    RgbImage,
    decode_jpeg_turbo,
    decode_pillow,
    decode_rgb,
    draft_floor,
    draft_scale,
)
from imagebatch.worker.samples import write_sample_photos

FP32 = Precision("fp32", "fp32", "cpu")
ORIENTATION = 0x0112


def decoded(data: bytes, transform: NumpyNormalize, decode: Callable = decode_rgb) -> DecodedImage:
    """What Decoder returns once it takes its pixels from decode_rgb (the wiring docs/decoding.md gives)."""
    rgb = decode(data, transform.draft_size)
    stat = ImageStat.Stat(rgb.image)
    return DecodedImage(
        width=rgb.width,
        height=rgb.height,
        mode=rgb.mode,
        format=rgb.format,
        mean=tuple(float(v) for v in stat.mean),
        std=tuple(float(v) for v in stat.stddev),
        tensor=transform(rgb.image),
    )


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, bench_photos: list[Path]) -> list[Path]:
    """scikit-image's photos (JPEG and PNG, colour and grey, up to 800 px) and the benchmark's photos."""
    return write_sample_photos(tmp_path_factory.mktemp("turbo_samples")) + bench_photos


@pytest.fixture(scope="module")
def transforms(resnet18) -> dict[bool, NumpyNormalize]:
    return {fast: NumpyNormalize(resnet18.transform, fast=fast) for fast in (False, True)}


def pillow_only(data: bytes, resize_size: int | None) -> RgbImage:
    """The reference for a JPEG: Decoder's Pillow steps, drafting to the same floor as decode_rgb."""
    return decode_pillow(data, draft_floor(resize_size))


def _spy() -> Callable:
    return patch.object(turbo.simplejpeg, "decode_jpeg", wraps=turbo.simplejpeg.decode_jpeg)


def _jpeg(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def _photo(size: tuple[int, int]) -> Image.Image:
    from skimage import data as skdata

    return Image.fromarray(skdata.astronaut()).resize(size, Image.BICUBIC)


def test_exact_mode_is_the_pillow_decoders_bit_for_bit(photos, transforms) -> None:
    """Same sizes, mode, format, statistics and tensor as Decoder in exact mode, JPEG or not."""
    jpegs = 0
    for path in photos:
        data = path.read_bytes()
        with _spy() as spy:
            got = decoded(data, transforms[False])
        jpegs += spy.call_count
        want = Decoder(transforms[False])(data)
        assert (got.width, got.height, got.mode, got.format) == (want.width, want.height, want.mode, want.format)
        assert (got.mean, got.std) == (want.mean, want.std), path.name
        assert torch.equal(got.tensor, want.tensor), path.name
    assert jpegs >= 20, "simplejpeg decoded too few of the JPEGs"


@pytest.mark.parametrize("floor", [256, 576])
def test_reduced_jpegs_are_pillows_draft_pixels_at_the_same_scale(photos, floor) -> None:
    datas = [p.read_bytes() for p in photos if p.suffix == ".jpg"]
    datas += [_jpeg(_photo(size)) for size in ((1024, 768), (2048, 1536), (4032, 3024))]
    reduced = 0
    for data in datas:
        got, want = decode_jpeg_turbo(data, floor), decode_pillow(data, floor)
        assert got is not None
        assert (got.width, got.height, got.mode, got.format) == (want.width, want.height, want.mode, want.format)
        assert np.array_equal(np.asarray(got.image), np.asarray(want.image))
        reduced += got.image.size != (got.width, got.height)
    assert reduced >= 3


def assert_within_tolerance(exact: DecodedImage, fast: DecodedImage, resnet18, name: str) -> None:
    tol = FAST_DECODE_TOLERANCE
    one_level = torch.tensor([1 / (255 * s) for s in resnet18.transform.std]).view(3, 1, 1)
    assert (exact.width, exact.height, exact.mode, exact.format) == (fast.width, fast.height, fast.mode, fast.format)
    assert ((exact.tensor - fast.tensor).abs() / one_level).mean() <= tol.mean_levels, name
    assert np.abs(np.subtract(exact.mean, fast.mean)).max() <= tol.channel_mean, name
    assert np.abs(np.subtract(exact.std, fast.std)).max() <= tol.channel_std, name
    r_exact, r_fast = infer(resnet18, [exact.tensor, fast.tensor], FP32, 5, keep_probabilities=True)
    assert np.abs(r_exact.probabilities - r_fast.probabilities).max() <= tol.probability, name
    assert abs(r_exact.entropy - r_fast.entropy) <= tol.entropy, name


def test_fast_mode_stays_within_the_published_tolerance_of_exact(photos, transforms, resnet18) -> None:
    drafted = 0
    for path in photos:
        data = path.read_bytes()
        drafted += draft_scale(Image.open(path).size, draft_floor(transforms[True].draft_size)) > 1
        assert_within_tolerance(Decoder(transforms[False])(data), decoded(data, transforms[True]), resnet18, path.name)
    assert drafted >= 1, "no photo took a reduced decode: the comparison proves nothing"


def _texture(side: int) -> bytes:
    """scikit-image's grass at native resolution, tiled: pixel-level detail everywhere (the hardest case)."""
    from skimage import data as skdata

    grass = skdata.grass()
    return _jpeg(Image.fromarray(np.tile(grass, (side // 512 + 1, side // 512 + 1))[:side, :side]).convert("RGB"))


@pytest.mark.parametrize("side", [512, 1024, 1228, 2048, 3024])
def test_reduced_textures_stay_within_tolerance_where_pillows_draft_rule_does_not(transforms, resnet18, side) -> None:
    """Pillow's rule drafts these to 1.0-2.0x the resize (5.4 levels, 0.09 at 512); the 2.25x floor keeps them in."""
    data = _texture(side)
    rgb = decode_rgb(data, 256)
    assert min(rgb.image.size) >= 576 or rgb.image.size == (side, side)
    assert_within_tolerance(Decoder(transforms[False])(data), decoded(data, transforms[True]), resnet18, str(side))


def test_reduced_decodes_keep_two_and_a_quarter_times_the_resize(transforms, resnet18) -> None:
    for size in ((800, 600), (1024, 768), (2048, 1536), (4032, 3024)):
        data = _jpeg(_photo(size))
        rgb = decode_rgb(data, 256)
        assert min(rgb.image.size) >= 576 or rgb.image.size == size
        exact = Decoder(transforms[False])(data)
        assert_within_tolerance(exact, decoded(data, transforms[True]), resnet18, str(size))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L"])
def test_large_pngs_are_box_reduced_in_fast_mode_within_tolerance(transforms, resnet18, mode) -> None:
    rng = np.random.default_rng(1)
    photo = np.asarray(_photo((2048, 1536)), dtype=np.int16) + rng.normal(0, 4, (1536, 2048, 3)).astype(np.int16)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).convert(mode).save(buffer, "PNG")
    data = buffer.getvalue()
    rgb = decode_rgb(data, transforms[True].draft_size)
    assert rgb.image.size == (1024, 768) and (rgb.width, rgb.height) == (2048, 1536)  # 1/2: 1536 // 576 = 2
    exact = Decoder(transforms[False])(data)
    assert_within_tolerance(exact, decoded(data, transforms[True]), resnet18, mode)
    assert torch.equal(decoded(data, transforms[False]).tensor, exact.tensor)  # exact mode never reduces


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("size", [(640, 400), (2400, 1500)])  # full decode; 1/2-scale reduced decode
def test_exif_orientation_as_pillow_applies_it(orientation, size) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = _jpeg(_photo(size), exif=exif.tobytes())
    with _spy() as spy:
        got = decode_rgb(data, 256)
    assert spy.call_count == 1
    reference = Image.open(io.BytesIO(data))
    reference.draft(None, (576, 576))  # draft_floor(256)
    want = ImageOps.exif_transpose(reference.convert("RGB"))
    assert np.array_equal(np.asarray(got.image), np.asarray(want))
    swapped = orientation >= 5
    assert (got.width, got.height) == (size[::-1] if swapped else size)
    assert got.image.size == (want.width, want.height) and (got.image.width < got.image.height) == swapped


def test_cmyk_goes_through_pillow_and_greyscale_through_simplejpeg(transforms) -> None:
    cmyk, grey = _jpeg(_photo((1400, 1200)).convert("CMYK")), _jpeg(_photo((1400, 1200)).convert("L"))
    for data, mode, calls in ((cmyk, "CMYK", 0), (grey, "L", 1)):
        with _spy() as spy:
            got = decoded(data, transforms[False])
            reduced = decode_rgb(data, 256)
        assert spy.call_count == 2 * calls
        want = Decoder(transforms[False])(data)
        assert got.mode == want.mode == reduced.mode == mode
        assert (got.mean, got.std) == (want.mean, want.std)
        assert torch.equal(got.tensor, want.tensor)
        assert reduced.image.size == (700, 600)  # 1/2: 1200 // 576 = 2
        assert np.array_equal(np.asarray(reduced.image), np.asarray(decode_pillow(data, 576).image))


def test_progressive_and_unsubsampled_jpegs_match_pillow(transforms) -> None:
    for data in (_jpeg(_photo((1200, 900)), progressive=True), _jpeg(_photo((700, 500)), subsampling=0)):
        for fast in (False, True):
            want = decoded(data, transforms[fast], pillow_only)
            assert torch.equal(decoded(data, transforms[fast]).tensor, want.tensor)


def _broken(photo: bytes) -> dict[str, bytes]:
    start_of_scan = photo.index(b"\xff\xda")
    middle = bytearray(photo)
    middle[len(photo) // 2 : len(photo) // 2 + 64] = bytes(range(64))  # markers and junk mid-stream
    return {
        "empty": b"",
        "text named .jpg": b"hello, not a picture\n" * 10,
        "magic then junk": b"\xff\xd8\xff" + bytes(range(256)) * 4,
        "headers only": photo[:start_of_scan],
        "truncated mid-scan": photo[: start_of_scan + (len(photo) - start_of_scan) // 3],
        "no end marker": photo[:-2],
        "corrupt mid-stream": bytes(middle),
    }


def _outcome(call: Callable[[], DecodedImage]) -> tuple[str, object]:
    try:
        return "ok", call().tensor
    except UnusableImage as exc:
        return exc.failure.category, None


@pytest.mark.parametrize("fast", [False, True])
def test_broken_bytes_fail_in_the_pillow_paths_categories(transforms, fast) -> None:
    for case, data in _broken(_jpeg(_photo((1200, 900)))).items():
        got = _outcome(lambda: decoded(data, transforms[fast]))
        want = _outcome(lambda: decoded(data, transforms[fast], pillow_only))
        assert want[0] == _outcome(lambda: Decoder(transforms[fast])(data))[0], case
        assert got[0] == want[0], case
        if got[0] == "ok":  # libjpeg decodes some damage with a warning: then the same pixels
            assert torch.equal(got[1], want[1]), case
    categories = {_outcome(lambda: decoded(d, transforms[fast]))[0] for d in _broken(_jpeg(_photo((64, 64)))).values()}
    assert {"empty_file", "unreadable", "truncated"} <= categories


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Image.open warns between 1x and 2x
def test_pixel_limit_is_checked_before_decoding(monkeypatch) -> None:
    data = _jpeg(_photo((1600, 1000)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # over it, under twice it: Pillow only warns
    with _spy() as spy, pytest.raises(UnusableImage) as info:
        decode_rgb(data, 256)
    assert info.value.failure.category == "too_large" and spy.call_count == 0
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500_000)  # over twice it: Pillow's DecompressionBombError
    with pytest.raises(UnusableImage) as info:
        decode_rgb(data, None)
    assert info.value.failure.category == "too_large"


@pytest.mark.parametrize(
    ("size", "draft", "scale"),
    [
        ((4032, 3024), 256, 8),
        ((1024, 768), 256, 2),
        ((600, 520), 256, 2),
        ((511, 4000), 256, 1),
        ((4032, 3024), None, 1),
    ],
)
def test_draft_scale_is_the_one_pillow_picks(size, draft, scale) -> None:
    assert draft_floor(256) == 576 and draft_floor(None) is None
    assert draft_scale(size, draft) == scale
    if draft and min(size) >= 2 * draft:
        image = Image.open(io.BytesIO(_jpeg(Image.new("RGB", size))))
        image.draft(None, (draft, draft))
        assert image.size == tuple(-(-s // scale) for s in size)
