"""Every awkward image format in one job through the real API and worker: status, category, numbers."""

import http.server
import io
import socket
import struct
import threading
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from imagebatch.core import errors
from tests.harness.images import photo, write_broken
from tests.harness.reference import reference_probabilities
from tests.harness.stack import wait_for_job
from tests.system.security.conftest import open_client

pytestmark = pytest.mark.e2e


def _save(directory: Path, name: str, image: Image.Image, **options) -> Path:
    path = directory / name
    image.save(path, **options)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb(path: Path) -> Path:
    """A 60-byte PNG whose header claims 100000 x 100000 pixels."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )
    return path


def _webp_compressed_tiff(path: Path) -> Path:
    """A TIFF whose Compression tag says WEBP: Pillow identifies it, this libtiff cannot decode it."""
    buffer = io.BytesIO()
    photo(16, 16, seed=7).save(buffer, format="TIFF")
    data = bytearray(buffer.getvalue())
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        if struct.unpack("<H", data[entry : entry + 2])[0] == 259:
            data[entry + 8 : entry + 10] = struct.pack("<H", 50001)
    path.write_bytes(bytes(data))
    return path


def _samples(directory: Path) -> dict[str, tuple[Path, str | None]]:
    """name -> (file, expected error category or None for success)."""
    directory.mkdir(parents=True, exist_ok=True)
    base = photo(96, 64, seed=3)
    frames = [photo(40, 30, seed=s).convert("P") for s in (4, 5)]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the stored 96x64 reads as 64x96
    palette = photo(48, 48, seed=6).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    deep = Image.fromarray((torch.linspace(0, 65535, 60 * 40).reshape(40, 60).numpy()).astype("uint16"))
    broken = write_broken(directory / "broken")
    return {
        "cmyk": (_save(directory, "cmyk.jpg", base.convert("CMYK")), None),
        "png16": (_save(directory, "deep.png", deep), None),
        "palette": (_save(directory, "palette.png", palette, transparency=0), None),
        "gif": (
            _save(directory, "anim.gif", frames[0], save_all=True, append_images=frames[1:], duration=100, loop=0),
            None,
        ),
        "exif": (_save(directory, "rotated.jpg", base, exif=exif), None),
        "tiny": (_save(directory, "one.png", Image.new("RGB", (1, 1), (200, 10, 10))), None),
        "tiff": (_save(directory, "photo.tif", base), None),
        "webp": (_save(directory, "photo.webp", base), None),
        "bmp": (_save(directory, "photo.bmp", base), None),
        "truncated": (broken["truncated"], errors.TRUNCATED),
        "empty": (broken["empty"], errors.EMPTY_FILE),
        "text": (broken["text"], errors.UNREADABLE),
        "bomb": (_bomb(directory / "bomb.png"), errors.TOO_LARGE),
        "webp_tiff": (_webp_compressed_tiff(directory / "odd.tif"), errors.UNSUPPORTED_FORMAT),
    }


def test_hostile_images_in_one_job(stack, new_key, tmp_path, torch_home):
    samples = _samples(tmp_path)
    files = [("files", (path.name, path.read_bytes())) for path, _ in samples.values()]
    with open_client(stack.url, new_key("images")) as client:
        # Two jobs, because the test limits allow at most 10 images per job.
        halves = [files[:7], files[7:]]
        rows = []
        for part in halves:
            response = client.post("/v1/jobs", files=part, data={"precision": "fp32", "top_k": "5"})
            assert response.status_code == 202, response.text
            final = wait_for_job(client, response.json()["id"], timeout=300)
            assert final["state"] == "completed", stack.all_logs()
            rows += client.get(f"/v1/jobs/{final['id']}/results", params={"limit": 100}).json()["items"]
    by_source = {row["source"]: row for row in rows}
    assert len(by_source) == len(samples)
    for name, (path, category) in samples.items():
        row = by_source[path.name]
        if category is None:
            assert row["status"] == "ok", (name, row.get("error"))
        else:
            assert (row["status"], row["error"]["category"]) == ("error", category), (name, row)
    assert (by_source["rotated.jpg"]["width"], by_source["rotated.jpg"]["height"]) == (64, 96)
    assert by_source["cmyk.jpg"]["mode"] == "CMYK" and by_source["deep.png"]["mode"].startswith("I")
    assert by_source["anim.gif"]["format"] == "GIF" and by_source["photo.webp"]["format"] == "WEBP"
    assert by_source["one.png"]["width"] == by_source["one.png"]["height"] == 1
    # Every decoded image classified exactly as torchvision's own single-image pipeline does.
    for name, (path, category) in samples.items():
        if category is None:
            expected = reference_probabilities("resnet18", torch_home, path)
            top = by_source[path.name]["top_k"]
            got = torch.tensor([t["probability"] for t in top])
            assert top[0]["index"] == int(expected.argmax()), name
            assert torch.allclose(got, expected[[t["index"] for t in top]], atol=2e-4), name


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_urls_resolving_to_private_addresses_fail_per_image(stack, new_key, tmp_path):
    (tmp_path / "cat.jpg").write_bytes(b"not fetched")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # This machine's name passes the API's spelling check; the worker resolves it to loopback/private.
    url = f"http://{socket.gethostname()}:{server.server_address[1]}/cat.jpg"
    try:
        with open_client(stack.url, new_key("urls")) as client:
            response = client.post("/v1/jobs", json={"uris": [url]})
            assert response.status_code == 202, response.text
            final = wait_for_job(client, response.json()["id"], timeout=120)
            (row,) = client.get(f"/v1/jobs/{final['id']}/results").json()["items"]
    finally:
        server.shutdown()
        server.server_close()
    assert final["counts"]["failed"] == 1
    assert row["error"]["category"] == errors.FORBIDDEN_ADDRESS, row
    assert "IMAGEBATCH_ALLOW_PRIVATE_URLS" in row["error"]["message"]
