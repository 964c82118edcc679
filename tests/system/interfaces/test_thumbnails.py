"""The API never decodes an uploaded image: thumbnails and previews are bytes the worker stored."""

import io
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.harness.images import photo, write_broken
from tests.harness.stack import Stack, wait_for_job

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
THUMBNAIL_SIZE = 256  # the setting's default, which this stack keeps
PARALLEL = 3


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def grey_png(path: Path, width: int, height: int, value: int = 128) -> Path:
    """An 8-bit grey PNG of one flat value, compressed row by row (never held in memory whole)."""
    pack = zlib.compressobj(9)
    parts = []
    row = b"\0" + bytes([value]) * min(width, MIB)
    for _ in range(height):
        left = width
        parts.append(pack.compress(b"\0"))
        while left:
            piece = min(left, MIB)
            parts.append(pack.compress(row[1 : piece + 1]))
            left -= piece
    parts.append(pack.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )
    return path


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (VmRSS) or its peak since the last reset (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for process {pid}")


def reset_peak(pid: int) -> float:
    """Start the process's peak-memory mark (VmHWM) afresh; its resident memory now."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return memory_mib(pid)


def peak_growth(pid: int, before: float) -> float:
    """How far the process's resident memory rose above `before` at its highest since reset_peak."""
    return memory_mib(pid, "VmHWM") - before


def maps_pillow(pid: int) -> bool:
    """Whether Pillow's C extension is loaded into a process."""
    return "/PIL/" in Path(f"/proc/{pid}/maps").read_text()


def _submit(client: httpx.Client, paths: list[Path], **options: str) -> dict:
    files = [("files", (p.name, p.read_bytes())) for p in paths]
    response = client.post("/v1/jobs", files=files, data=options)
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json()["id"], timeout=300)


def _rows(client: httpx.Client, job_id: str) -> dict[str, dict]:
    items = client.get(f"/v1/jobs/{job_id}/results", params={"limit": 100}).json()["items"]
    return {item["source"]: item for item in items}


def _parallel_gets(stack: Stack, headers: dict, path: str) -> tuple[list[httpx.Response], float, float]:
    """PARALLEL requests of `path` at once, and /healthz's latency while they run: (answers, seconds, healthz)."""

    def get(_: int) -> httpx.Response:
        return httpx.get(f"{stack.url}{path}", headers=headers, timeout=120)

    began = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        answers = pool.map(get, range(PARALLEL))
        time.sleep(0.1)
        health_began = time.monotonic()
        assert httpx.get(f"{stack.url}/healthz", timeout=60).status_code == 200
        health = time.monotonic() - health_began
        answers = list(answers)
    return answers, time.monotonic() - began, health


def test_a_thin_png_thumbnail_leaves_the_api_flat(stack, api_key, client, tmp_path):
    """1 x 80,000,000 grey pixels in a small file: the worker classifies it; the API must not decode it."""
    thin = grey_png(tmp_path / "thin.png", 80_000_000, 1)
    assert thin.stat().st_size < 200_000
    job = _submit(client, [thin])
    (row,) = _rows(client, job["id"]).values()
    assert row["status"] == "ok", (row, stack.all_logs())
    pid = stack.api.pid
    before = reset_peak(pid)
    path = f"/v1/jobs/{job['id']}/images/0/thumbnail"
    answers, seconds, health = _parallel_gets(stack, client.headers, path)
    grew = peak_growth(pid, before)
    print(f"{PARALLEL} thumbnails: API peak +{grew:.0f} MiB, {seconds:.2f} s, /healthz {health:.3f} s meanwhile")
    assert grew < 100, f"the API grew by {grew:.0f} MiB serving {PARALLEL} thumbnails"
    assert seconds < 1 and health < 0.5, (seconds, health)
    for answer in answers:
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(answer.content)) as small:
            assert small.format == "JPEG" and small.size == (THUMBNAIL_SIZE, 1)
    assert not maps_pillow(pid), "the API process loaded Pillow"


def test_an_image_rejected_as_too_large_has_no_thumbnail_or_preview(stack, api_key, client, tmp_path):
    huge = grey_png(tmp_path / "huge.png", 13_000, 13_000, value=0)
    job = _submit(client, [huge])
    (row,) = _rows(client, job["id"]).values()
    assert (row["status"], row["error"]["category"]) == ("error", "too_large"), row
    pid = stack.api.pid
    before = reset_peak(pid)
    base = f"/v1/jobs/{job['id']}/images/0"
    answers, seconds, _ = _parallel_gets(stack, client.headers, f"{base}/thumbnail")
    print(f"too_large: API peak +{peak_growth(pid, before):.0f} MiB, {seconds:.2f} s")
    assert [a.status_code for a in answers] == [404] * PARALLEL and seconds < 2
    assert "no thumbnail" in answers[0].json()["detail"]
    # Not handed to the browser either: a picture the worker refused is not shown.
    preview = client.get(f"{base}/preview", follow_redirects=False)
    assert preview.status_code == 404, preview.text
    assert peak_growth(pid, before) < 100
    assert not maps_pillow(pid)


def test_previews_for_formats_a_browser_cannot_show(stack, api_key, client, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    tiff, jpeg = folder / "wide.tif", folder / "wide.jpg"
    photo(1600, 900, seed=4).save(tiff)
    photo(320, 240, seed=5).save(jpeg)
    truncated = write_broken(folder / "broken")["truncated"]
    job = _submit(client, [tiff, jpeg, truncated])
    rows = _rows(client, job["id"])
    assert rows["wide.tif"]["format"] == "TIFF" and rows["wide.jpg"]["status"] == "ok"
    base = f"/v1/jobs/{job['id']}/images"
    detail = client.get(f"{base}/0").json()
    assert detail["links"]["preview"] == f"{base}/0/preview"
    # TIFF: a stored JPEG a browser shows, no larger than 1024 px, same picture shape.
    preview = client.get(f"{base}/0/preview", follow_redirects=False)
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(preview.content)) as shown:
        assert shown.format == "JPEG" and shown.size == (1024, 576)
    thumb = client.get(f"{base}/0/thumbnail")
    with Image.open(io.BytesIO(thumb.content)) as small:
        assert small.format == "JPEG" and small.size == (256, 144)
    # JPEG (and a JPEG the worker could not decode): the original is already browser-safe.
    for index in (1, 2):
        redirect = client.get(f"{base}/{index}/preview", follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"] == f"{base}/{index}/content"
    assert client.get(f"{base}/2/thumbnail").status_code == 404
    assert client.get(f"{base}/1/preview", follow_redirects=True).content == jpeg.read_bytes()
    # Deleting the job removes what the worker stored for it.
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    stored = Path(stack.env["IMAGEBATCH_DATA_DIR"]) / "blobs" / job["id"]
    assert not stored.exists()


def test_a_chunk_stores_its_renditions_in_one_pack_and_older_rows_keep_theirs(stack, api_key, client, tmp_path, pg_url):
    """One stored object per chunk, each row naming its range; a row processed before packs (no reference)
    is served from its own object, and a pack that is gone is a 404 that says so."""
    from sqlalchemy import create_engine, update
    from sqlalchemy.orm import Session

    from imagebatch.core.renditions import thumbnail_key
    from imagebatch.db.models import Image as ImageRow

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.jpg")
        photo(400 + 40 * i, 300, seed=20 + i).save(paths[-1])
    job = _submit(client, paths)
    base, blobs = f"/v1/jobs/{job['id']}/images", Path(stack.env["IMAGEBATCH_DATA_DIR"]) / "blobs"
    packs = list((blobs / job["id"] / "renditions").iterdir())
    assert len(packs) == 1 and not (blobs / job["id"] / "thumbnails").exists()  # 3 images, one chunk
    thumbnails = [client.get(f"{base}/{i}/thumbnail") for i in range(3)]
    assert sum(len(t.content) for t in thumbnails) == packs[0].stat().st_size
    for i, answer in enumerate(thumbnails):
        with Image.open(io.BytesIO(answer.content)) as small:
            assert small.format == "JPEG" and small.size == (256, round(256 * 300 / (400 + 40 * i)))
    engine = create_engine(pg_url)
    try:
        with Session(engine) as session, session.begin():
            row = ImageRow.job_id == job["id"]
            session.execute(update(ImageRow).where(row, ImageRow.idx == 0).values(renditions=None))
        older = blobs / thumbnail_key(job["id"], 0)
        older.parent.mkdir(parents=True)
        older.write_bytes(thumbnails[1].content)
        assert client.get(f"{base}/0/thumbnail").content == thumbnails[1].content
        packs[0].unlink()
        gone = client.get(f"{base}/1/thumbnail")
        assert gone.status_code == 404 and "pack is gone" in gone.json()["detail"]
    finally:
        engine.dispose()
