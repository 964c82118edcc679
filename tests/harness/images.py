"""Image files for end-to-end tests: small generated photos and deliberately broken files."""

import io
from pathlib import Path

import numpy as np
from PIL import Image


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A smooth random colour field with noise: decodes like a photo, unique per seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC), dtype=np.int16)
    noise = rng.integers(-12, 13, size=field.shape, dtype=np.int16)
    return Image.fromarray(np.clip(field + noise, 0, 255).astype(np.uint8))


def write_photos(directory: Path, count: int, start_seed: int = 0) -> list[Path]:
    """JPEGs of a few sizes with every fourth one a PNG."""
    directory.mkdir(parents=True, exist_ok=True)
    sizes = [(320, 240), (240, 320), (500, 375), (256, 256)]
    paths = []
    for i in range(count):
        image = photo(*sizes[i % len(sizes)], seed=start_seed + i)
        suffix = ".png" if i % 4 == 3 else ".jpg"
        path = directory / f"photo_{start_seed + i:04d}{suffix}"
        image.save(path)
        paths.append(path)
    return paths


def write_broken(directory: Path) -> dict[str, Path]:
    """A truncated JPEG, a zero-byte file and a text file named .jpg."""
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    photo(320, 240, seed=999).save(buffer, format="JPEG")
    files = {
        "truncated": (directory / "truncated.jpg", buffer.getvalue()[: len(buffer.getvalue()) // 2]),
        "empty": (directory / "empty.jpg", b""),
        "text": (directory / "notes.jpg", b"this is not an image, just text\n" * 10),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {name: path for name, (path, _) in files.items()}
