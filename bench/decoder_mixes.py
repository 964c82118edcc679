"""Image mixes for the decoder benchmark: the throughput benchmark's photos, and a mix of sizes, formats, modes."""

import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.images import PHONE_SIZE, _base_photos, _variant, bench_images, kind_of
from imagebatch.worker.samples import write_sample_photos

logger = logging.getLogger(__name__)

ORIENTATION = 0x0112
_DONE = "complete"


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str  # what the tables group by: phone-jpeg, jpeg, small-jpeg, png, png-phone, odd
    data: bytes


def bench_mix(count: int, seed: int = 0) -> list[Sample]:
    """The throughput benchmark's images: ~500x375 JPEGs, 1 in 20 phone-sized, 1 in 10 PNG."""
    names = {"png": "png", "phone": "phone-jpeg", "jpeg": "jpeg"}
    return [Sample(p.name, names[kind_of(i)], p.read_bytes()) for i, p in enumerate(bench_images(count, seed))]


def photo_mix(count: int) -> list[Sample]:
    """scikit-image's real photos (up to 800 px, colour and grey, JPEG and PNG) and flipped/cropped variants."""
    directory = Path(tempfile.gettempdir()) / "imagebatch-bench" / f"decoder-photos-{count}"
    paths = write_sample_photos(directory, count)
    return [Sample(p.name, f"photo-{p.suffix[1:]}", p.read_bytes()) for p in paths]


TEXTURE_SIDES = (640, 768, 1024, 1228, 1536, 2048, 2448, 3024)


def texture_mix() -> list[Sample]:
    """A stress test for reduced decodes: scikit-image photos at native resolution, tiled to square JPEGs.

    Tiling keeps every pixel's detail (an upscaled photo would be smooth), so these show how far a
    reduced decode can move an image full of pixel-level texture at each size.
    """
    from skimage import data

    sources = {"grass": data.grass(), "gravel": data.gravel(), "astronaut": data.astronaut(), "coffee": data.coffee()}
    samples = []
    for side in TEXTURE_SIDES:
        for name, pixels in sources.items():
            reps = -(-side // min(pixels.shape[:2])) + 1
            tiled = np.tile(pixels, (reps, reps) + (1,) * (pixels.ndim - 2))[:side, :side]
            samples.append(Sample(f"{name}-{side}.jpg", f"{side}px", _jpeg(Image.fromarray(tiled).convert("RGB"), 92)))
    return samples


def _jpeg(image: Image.Image, quality: int = 90, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _rotated(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return _jpeg(image, exif=exif.tobytes())


def _grey16(image: Image.Image) -> Image.Image:
    """A 16-bit greyscale scan: the photo's luminance over the full 0-65535 range."""
    return Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)


def _varied(rng: np.random.Generator) -> list[tuple[str, str, bytes]]:
    bases = _base_photos()

    def photo(size: tuple[int, int]) -> Image.Image:
        return _variant(bases[int(rng.integers(0, len(bases)))], size, rng)

    small = [(160, 120), (320, 240), (300, 300), (640, 480), (800, 600), (1024, 768)]
    out = [(f"phone-{i}.jpg", "phone-jpeg", _jpeg(photo(PHONE_SIZE), int(rng.integers(85, 96)))) for i in range(6)]
    out += [(f"small-{w}x{h}.jpg", "small-jpeg", _jpeg(photo((w, h)))) for w, h in small]
    out += [(f"rgb-{i}.png", "png", _png(photo((500, 375)))) for i in range(3)]
    out += [("rgb-phone.png", "png-phone", _png(photo(PHONE_SIZE)))]
    out += [(f"rgba-{i}.png", "png", _png(photo((400, 300)).convert("RGBA"))) for i in range(2)]
    out += [(f"palette-{i}.png", "png", _png(photo((500, 375)).quantize(256))) for i in range(2)]
    out += [(f"grey16-{i}.png", "png", _png(_grey16(photo((512, 384))))) for i in range(2)]
    out += [
        ("cmyk-phone.jpg", "odd", _jpeg(photo(PHONE_SIZE).convert("CMYK"))),
        ("cmyk.jpg", "odd", _jpeg(photo((500, 375)).convert("CMYK"))),
        ("progressive-phone.jpg", "odd", _jpeg(photo(PHONE_SIZE), progressive=True)),
        ("progressive.jpg", "odd", _jpeg(photo((500, 375)), progressive=True)),
        ("rotated6-phone.jpg", "odd", _rotated(photo(PHONE_SIZE), 6)),
        ("rotated8.jpg", "odd", _rotated(photo((500, 375)), 8)),
        ("rotated3.jpg", "odd", _rotated(photo((640, 480)), 3)),
        ("grey-phone.jpg", "odd", _jpeg(photo(PHONE_SIZE).convert("L"))),
        ("grey.jpg", "odd", _jpeg(photo((500, 375)).convert("L"))),
        ("444.jpg", "odd", _jpeg(photo((500, 375)), subsampling=0)),
    ]
    return out


def varied_mix(seed: int = 0) -> list[Sample]:
    """Phone-sized and small JPEGs, PNGs (RGB, RGBA, palette, 16-bit grey), CMYK/progressive/rotated JPEGs."""
    directory = Path(tempfile.gettempdir()) / "imagebatch-bench" / f"decoder-mix-seed{seed}"
    if not (directory / _DONE).exists():
        logger.info("generating the varied decoder mix in %s", directory)
        directory.mkdir(parents=True, exist_ok=True)
        for i, (name, kind, data) in enumerate(_varied(np.random.default_rng(seed))):
            (directory / f"{i:02d}__{kind}__{name}").write_bytes(data)
        (directory / _DONE).write_text("ok")
    paths = sorted(p for p in directory.iterdir() if p.name != _DONE)
    samples = []
    for path in paths:
        _, kind, name = path.name.split("__")
        samples.append(Sample(name, kind, path.read_bytes()))
    return samples
