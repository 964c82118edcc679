"""Reading and decoding: every kind of bad file gets its category, every odd good file decodes."""

import io
import struct
import zlib
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from skimage import data as skdata
from torchvision.models import ResNet18_Weights

from imagebatch.core import errors
from imagebatch.core.config import settings
from imagebatch.worker.gpu import plan_for
from imagebatch.worker.preprocess import DecodedImage, ImageFailure
from imagebatch.worker.reader import Reader

TRANSFORM = ResNet18_Weights.IMAGENET1K_V1.transforms()
DECODE = plan_for("cpu").decoder(TRANSFORM)  # the worker's exact CPU preprocessing


def _read(reader: Reader, path: Path) -> DecodedImage | ImageFailure:
    return reader.read_image(f"file:{path}", DECODE)


def _jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.fromarray(skdata.chelsea()).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _png_with_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims huge dimensions; no pixel data is needed to trip the bomb check."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _expect_failure(outcome: DecodedImage | ImageFailure, category: str) -> None:
    assert isinstance(outcome, ImageFailure), outcome
    assert outcome.category == category, outcome
    assert outcome.message


def test_zero_bytes_is_empty_file(reader: Reader, tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    _expect_failure(_read(reader, tmp_path / "empty.jpg"), errors.EMPTY_FILE)


def test_text_named_jpg_is_unreadable(reader: Reader, tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("these are not the pixels you are looking for\n" * 20)
    _expect_failure(_read(reader, tmp_path / "notes.jpg"), errors.UNREADABLE)


def test_truncated_jpeg_is_truncated(reader: Reader, tmp_path: Path) -> None:
    data = _jpeg_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 6 // 10])
    _expect_failure(_read(reader, tmp_path / "cut.jpg"), errors.TRUNCATED)


def test_missing_file_is_not_found(reader: Reader, tmp_path: Path) -> None:
    _expect_failure(_read(reader, tmp_path / "gone.jpg"), errors.NOT_FOUND)


def test_huge_dimensions_in_header_are_too_large(reader: Reader, tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(_png_with_header_only(100_000, 100_000))
    _expect_failure(_read(reader, tmp_path / "bomb.png"), errors.TOO_LARGE)


@pytest.mark.parametrize("side", [40, 100])  # 1600 px: Pillow only warns; 10000 px: Pillow raises
def test_pixels_over_the_limit_are_too_large(
    reader: Reader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (side, side), "white").save(tmp_path / "big.png")
    with pytest.warns(Image.DecompressionBombWarning) if side == 40 else nullcontext():
        _expect_failure(_read(reader, tmp_path / "big.png"), errors.TOO_LARGE)


def _assert_decodes_like_pillow(reader: Reader, path: Path, mode: str, fmt: str) -> DecodedImage:
    """The decode equals Pillow's own convert("RGB") followed by the weights' transforms."""
    decoded = _read(reader, path)
    assert isinstance(decoded, DecodedImage), decoded
    assert (decoded.mode, decoded.format) == (mode, fmt)
    with Image.open(path) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    pixels = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    assert (decoded.width, decoded.height) == rgb.size
    np.testing.assert_allclose(decoded.mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(decoded.std, pixels.std(axis=0), rtol=1e-4)
    assert torch.equal(decoded.tensor, TRANSFORM(rgb))
    assert decoded.tensor.shape == (3, 224, 224)
    return decoded


def test_cmyk_jpeg_decodes(reader: Reader, tmp_path: Path) -> None:
    Image.fromarray(skdata.coffee()).convert("CMYK").save(tmp_path / "cmyk.jpg")
    _assert_decodes_like_pillow(reader, tmp_path / "cmyk.jpg", "CMYK", "JPEG")


def test_16_bit_png_decodes(reader: Reader, tmp_path: Path) -> None:
    ramp = (np.linspace(0, 65535, 64 * 80).reshape(64, 80)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        stored_mode = im.mode
    assert stored_mode.startswith("I")
    _assert_decodes_like_pillow(reader, tmp_path / "deep.png", stored_mode, "PNG")


def test_palette_png_with_transparency_decodes(reader: Reader, tmp_path: Path) -> None:
    im = Image.fromarray(skdata.astronaut()).resize((128, 128))
    im = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.save(tmp_path / "pal.png", transparency=0)
    _assert_decodes_like_pillow(reader, tmp_path / "pal.png", "P", "PNG")


def test_rgba_png_decodes(reader: Reader, tmp_path: Path) -> None:
    Image.fromarray(skdata.logo()).save(tmp_path / "logo.png")
    _assert_decodes_like_pillow(reader, tmp_path / "logo.png", "RGBA", "PNG")


def test_animated_gif_uses_its_first_frame(reader: Reader, tmp_path: Path) -> None:
    frames = [Image.new("RGB", (60, 40), color) for color in [(200, 30, 30), (30, 200, 30), (30, 30, 200)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    decoded = _assert_decodes_like_pillow(reader, tmp_path / "anim.gif", "P", "GIF")
    red, green, blue = decoded.mean
    assert red > 150 and green < 80 and blue < 80


def test_exif_orientation_is_applied(reader: Reader, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(skdata.rocket()).resize((320, 200)).save(tmp_path / "rot.jpg", exif=exif)
    decoded = _assert_decodes_like_pillow(reader, tmp_path / "rot.jpg", "RGB", "JPEG")
    assert (decoded.width, decoded.height) == (200, 320)


def test_http_fetch_ok_404_oversized_and_refused(
    reader: Reader, http_root: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = http_root
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", True)  # the test server is on loopback
    data = _jpeg_bytes()
    (root / "cat.jpg").write_bytes(data)
    good = reader.read_image(f"{base}/cat.jpg", DECODE)
    assert isinstance(good, DecodedImage) and (good.width, good.height) == (451, 300)
    _expect_failure(reader.read_image(f"{base}/missing.jpg", DECODE), errors.FETCH_FAILED)
    _expect_failure(reader.read_image("http://127.0.0.1:9/x.jpg", DECODE), errors.FETCH_FAILED)
    monkeypatch.setattr(settings, "FETCH_MAX_BYTES", len(data) - 1)
    _expect_failure(reader.read_image(f"{base}/cat.jpg", DECODE), errors.TOO_LARGE)


def test_read_many_keeps_order_and_isolates_failures(reader: Reader, tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    Image.fromarray(skdata.chelsea()).save(tmp_path / "a.png")
    Image.fromarray(skdata.camera()).save(tmp_path / "b.png")
    outcomes = reader.read_many([f"file:{tmp_path / n}" for n in ("a.png", "empty.jpg", "b.png")], DECODE)
    assert [type(o).__name__ for o in outcomes] == ["DecodedImage", "ImageFailure", "DecodedImage"]
    assert outcomes[0].mode == "RGB" and outcomes[2].mode == "L"
