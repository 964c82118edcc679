"""imagebatch.client against a real API process (no worker: jobs stay queued)."""

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from imagebatch.client import ApiError, ApiUnreachable, Client, NotFound, WaitTimeout
from tests.conftest import REPO, clean_env
from tests.harness.services import free_port


@pytest.fixture
def client(api_url: str):
    with Client(api_url, timeout=30) as c:
        yield c


def test_folder_upload_expands_recursively_and_skips_non_images(client: Client, photos: Path):
    sent: list[tuple[int, int]] = []
    job = client.submit(photos, on_progress=lambda done, total: sent.append((done, total)))
    assert job.state == "queued"
    assert job.counts["total"] == 3
    sources = {row["source"] for row in client.iter_results(job.id)}
    assert sources == {"photos/astronaut.jpg", "photos/chelsea-cat.jpg", "photos/more/astronaut.jpg"}
    expected_bytes = sum(p.stat().st_size for p in photos.rglob("*.jpg"))
    assert sent[-1] == (expected_bytes, expected_bytes)


def test_options_reach_the_job(client: Client, photos: Path):
    job = client.submit(
        [photos / "astronaut.jpg"], model="resnet50", top_k=3, store_probabilities=True, precision="fp32"
    )
    fetched = client.get_job(job.id)
    assert (fetched.data["model"], fetched.data["top_k"]) == ("resnet50", 3)
    assert fetched.data["store_probabilities"] is True and fetched.data["precision"] == "fp32"
    assert fetched.data["decode"] == "exact"  # fp32 and no decode option: torchvision's preprocessing
    fast = client.submit([photos / "astronaut.jpg"], precision="fp32", decode="fast")
    assert client.get_job(fast.id).data["decode"] == "fast"
    assert client.get_job(client.submit([photos / "astronaut.jpg"]).id).data["decode"] == "fast"  # the setting


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_single_archive_is_sent_as_archive(client: Client, photos: Path, tmp_path: Path, kind: str):
    archive = tmp_path / f"photos.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            zf.write(photos / "astronaut.jpg", "a/astronaut.jpg")
            zf.write(photos / "chelsea-cat.jpg", "chelsea-cat.jpg")
    else:
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(photos / "astronaut.jpg", "a/astronaut.jpg")
            tf.add(photos / "chelsea-cat.jpg", "chelsea-cat.jpg")
    job = client.submit(archive)
    assert job.counts["total"] == 2


def test_urls_and_manifests_are_sent_as_uris(client: Client, tmp_path: Path):
    urls = ["http://example.invalid/a.jpg", "https://example.invalid/b.png"]
    job = client.submit(urls)
    assert job.counts["total"] == 2
    manifest = tmp_path / "list.txt"
    manifest.write_text("# two more\nhttp://example.invalid/c.jpg\n\nhttp://example.invalid/d.jpg\n")
    as_json = tmp_path / "list.json"
    as_json.write_text(json.dumps({"uris": ["http://example.invalid/e.jpg"]}))
    job = client.submit([manifest, as_json])
    rows = client.results(job.id)
    assert list(rows["source"]) == [f"http://example.invalid/{c}.jpg" for c in "cde"]


def test_mixing_kinds_is_refused_before_any_request(photos: Path):
    client = Client(f"http://127.0.0.1:{free_port()}")  # nothing listens: no request may be made
    with pytest.raises(ValueError, match="cannot mix"):
        client.submit([photos / "astronaut.jpg", "https://example.invalid/x.jpg"])
    with pytest.raises(FileNotFoundError, match="no-such-file.jpg"):
        client.submit(["no-such-file.jpg"])


def test_list_cancel_delete_round_trip(client: Client, photos: Path):
    job = client.submit(photos)
    assert job.id in [j.id for j in client.list_jobs(limit=500)]
    assert job.id in [j.id for j in client.list_jobs(state="queued", limit=500)]
    cancelled = client.cancel(job.id)
    assert cancelled.state in ("cancelling", "cancelled")
    client.delete(job.id)
    with pytest.raises(NotFound) as info:
        client.get_job(job.id)
    assert info.value.status == 404 and "\n" not in str(info.value)


def test_results_frame_and_exports_cover_every_image(client: Client, photos: Path, tmp_path: Path):
    job = client.submit(photos)
    frame = job.results()
    assert len(frame) == 3
    assert {"index", "source", "status", "error_category", "error_message"} <= set(frame.columns)
    assert set(frame["status"]) == {"pending"}
    assert len(client.results(job.id, limit=2)) == 2
    csv_path = job.export(tmp_path / "out.csv")
    assert sorted(pd.read_csv(csv_path)["source"]) == sorted(frame["source"])
    assert not (tmp_path / "out.csv.partial").exists()
    parquet = pd.read_parquet(job.export(tmp_path / "out.parquet", format="parquet"))
    assert list(parquet["index"]) == [0, 1, 2]


def test_api_errors_carry_status_and_detail(client: Client, photos: Path):
    with pytest.raises(ApiError) as info:
        client.submit(photos, top_k=100000)
    assert info.value.status == 422 and "top_k" in info.value.detail
    with pytest.raises(NotFound):
        client.results("0" * 32)


def test_wait_times_out_on_a_job_nobody_runs(client: Client, photos: Path):
    job = client.submit([photos / "astronaut.jpg"])
    with pytest.raises(WaitTimeout, match=job.id):
        job.wait(poll=0.1, timeout=0.5)


def test_unreachable_api_is_one_clear_line():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiUnreachable) as info:
        Client(url).get_job("x")
    message = str(info.value)
    assert url in message and "\n" not in message and "IMAGEBATCH_API_URL" in message


def test_many_files_upload_without_holding_them_open(api_url: str, tmp_path: Path):
    """300 files under a 64-descriptor limit: each file is open only while it streams."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        (folder / f"img{i:03d}.png").write_bytes(b"not really a png %d" % i)
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "from imagebatch.client import Client\n"
        "print(Client(sys.argv[1]).submit(sys.argv[2]).counts['total'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, api_url, str(folder)],
        env=clean_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "300"
