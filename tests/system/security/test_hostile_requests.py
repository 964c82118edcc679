"""Hostile requests against a real API: archives, content types, bodies and URIs; 4xx, never 500."""

import csv
import io
import os
import stat
import tarfile
import uuid
import zipfile

import pyarrow.parquet as pq
import pytest

from tests.system.security.conftest import LIMITS
from tests.system.security.test_auth import _jpeg


@pytest.fixture
def client(client_for, api_key):
    return client_for(api_key(f"hostile-{uuid.uuid4().hex[:8]}"))


def _zip(
    members: dict[str, bytes], symlinks: dict[str, str] | None = None, compression: int = zipfile.ZIP_DEFLATED
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def _post_archive(client, data: bytes, name: str = "a.zip"):
    return client.post("/v1/jobs", files={"archive": (name, data)})


def test_zip_slip_symlinks_and_nested_archives_are_skipped_with_reasons(client):
    data = _zip(
        {
            "../../evil.jpg": _jpeg(1),
            "/etc/cron.d/x.jpg": _jpeg(2),
            "ok/good.jpg": _jpeg(3),
            "C:\\windows\\x.jpg": _jpeg(4),
            "inner.zip": _zip({"a.jpg": _jpeg(5)}),
            "more.tar.gz": b"\x1f\x8b" + b"\0" * 20,
        },
        symlinks={"link.jpg": "/etc/passwd"},
    )
    response = _post_archive(client, data)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["counts"]["total"] == 1
    reasons = {s["source"]: s["reason"] for s in job["skipped"]}
    assert reasons["../../evil.jpg"].startswith("unsafe path")
    assert reasons["/etc/cron.d/x.jpg"].startswith("unsafe path")
    assert reasons["C:\\windows\\x.jpg"].startswith("unsafe path")
    assert reasons["link.jpg"] == "not a regular file"
    assert reasons["inner.zip"].startswith("nested archive")
    assert reasons["more.tar.gz"].startswith("nested archive")
    results = client.get(f"/v1/jobs/{job['id']}/results").json()["items"]
    assert [r["source"] for r in results] == ["ok/good.jpg"]


def test_tar_links_and_traversal_are_skipped(client):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("../up.jpg", _jpeg(1)), ("fine.jpg", _jpeg(2))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, kind in (("sym.jpg", tarfile.SYMTYPE), ("hard.jpg", tarfile.LNKTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/shadow"
            archive.addfile(info)
    response = _post_archive(client, buffer.getvalue(), "a.tar.gz")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["counts"]["total"] == 1
    reasons = {s["source"]: s["reason"] for s in job["skipped"]}
    assert reasons == {
        "../up.jpg": "unsafe path: contains '..'",
        "sym.jpg": "not a regular file",
        "hard.jpg": "not a regular file",
    }


@pytest.mark.parametrize("kind", ["members", "uncompressed", "ratio"])
def test_zip_bombs_are_refused_naming_the_limit(client, kind):
    if kind == "members":
        data = _zip({f"{i}.txt": b"x" for i in range(int(LIMITS["IMAGEBATCH_MAX_ARCHIVE_MEMBERS"]) + 1)})
        limit = "MAX_ARCHIVE_MEMBERS"
    elif kind == "uncompressed":  # one member over the total (64 MiB of zeros deflate to ~65 KB)
        data = _zip({"huge.bmp": bytes(int(LIMITS["IMAGEBATCH_MAX_ARCHIVE_UNCOMPRESSED_BYTES"]) + 1)})
        limit = "MAX_ARCHIVE_UNCOMPRESSED_BYTES"
    else:  # 20 MiB of zeros: under the total, but ~1000x its compressed size
        data = _zip({"a.bmp": bytes(20 * 1024 * 1024), "b.jpg": _jpeg(1)})
        limit = "MAX_ARCHIVE_RATIO"
    response = _post_archive(client, data)
    assert response.status_code == 413, response.text
    assert limit in response.json()["detail"]
    assert client.get("/v1/jobs").json()["items"] == []


def test_a_tar_bomb_is_refused_before_it_is_expanded(client):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("zeros.txt")  # not even an image: skipped members count too
        info.size = 30 * 1024 * 1024
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    response = _post_archive(client, buffer.getvalue(), "bomb.tgz")
    assert response.status_code == 413 and "MAX_ARCHIVE_RATIO" in response.json()["detail"], response.text


@pytest.mark.parametrize(
    "data,name,message",
    [
        (_zip({}), "empty.zip", "contains no images"),
        (_zip({"readme.txt": b"hi"}), "text.zip", "contains no images"),
        (b"PK\x03\x04 not really a zip", "broken.zip", "archive"),
        (b"", "nothing.tar", "archive"),
    ],
)
def test_empty_or_broken_archives_are_422(client, data, name, message):
    response = _post_archive(client, data, name)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "image/jpeg", "application/x-www-form-urlencoded", ""]
)
def test_wrong_content_type_is_415(client, content_type):
    response = client.post("/v1/jobs", content=b"uris=x", headers={"content-type": content_type})
    assert response.status_code == 415, response.text


@pytest.mark.parametrize(
    "body,field",
    [
        (b'{"uris": ["/x.jpg"', "body"),
        (b"[1, 2]", "uris"),
        (b'{"uris": "not-a-list"}', "uris"),
        (b'{"uris": [42]}', "uris[0]"),
        (b'{"uris": ["/x.jpg"], "top_k": "many"}', "top_k"),
        # "resnet9000" could be a custom model's name (resolved after the images): a spelling no model can have.
        (b'{"uris": ["/x.jpg"], "model": "resnet 9000"}', "model"),
        (b'{"uris": ["/x.jpg"], "precision": "fp8"}', "precision"),
        (b"\xff\xfe garbage", "body"),
    ],
)
def test_malformed_json_and_bad_options_are_422_naming_the_field(client, body, field):
    response = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def test_bad_multipart_options_are_422_naming_the_field(client):
    files = [("files", ("a.jpg", _jpeg(1)))]
    for data, field in (({"top_k": "0"}, "top_k"), ({"model": "x"}, "model"), ({"bogus": "1"}, "bogus")):
        response = client.post("/v1/jobs", files=files, data=data)
        assert response.status_code == 422 and field in response.json()["detail"], response.text


def test_local_paths_outside_the_roots_are_refused(client, uri_root, tmp_path):
    (uri_root / "inside.jpg").write_bytes(_jpeg(1))
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(_jpeg(2))
    link = uri_root / f"link-{uuid.uuid4().hex[:6]}.jpg"
    os.symlink(outside, link)
    dir_link = uri_root / f"dir-{uuid.uuid4().hex[:6]}"
    os.symlink(tmp_path, dir_link)
    for entry in (
        "/etc/passwd",
        f"{uri_root}/../../etc/passwd",
        f"file://{uri_root}/../secret.jpg",
        str(link),
        f"{dir_link}/secret.jpg",
        "file://otherhost/etc/passwd",
        "relative/x.jpg",
        "ftp://example.com/x.jpg",
        "gopher://127.0.0.1:6379/_FLUSHALL",
    ):
        response = client.post("/v1/jobs", json={"uris": [str(uri_root / "inside.jpg"), entry]})
        assert response.status_code == 422, (entry, response.text)
        assert "uris[1]" in response.json()["detail"], entry
    assert client.post("/v1/jobs", json={"uris": [str(uri_root / "inside.jpg")]}).status_code == 202


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.jpg",
        "http://localhost:6379/x.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x.jpg",
        "http://[fd00::1]/x.jpg",
        "http://10.0.0.1/x.jpg",
        "https://192.168.0.1/x.jpg",
        "http://0.0.0.0:8000/x.jpg",
        "http://[::ffff:127.0.0.1]/x.jpg",
        "http://metadata.localhost/x",
        "http:///x.jpg",
    ],
)
def test_private_urls_are_refused_at_submission(client, url):
    response = client.post("/v1/jobs", json={"uris": [url]})
    assert response.status_code == 422, response.text
    assert "uris[0]" in response.json()["detail"]


FORMULA_NAMES = ['=HYPERLINK("http://x","y").jpg', "@SUM(1).jpg", "+1.jpg", "-2.jpg", "\tTAB.jpg", "\rCR.jpg"]
SAFE_NAMES = ["plain.jpg", "'quoted.jpg", "a=b.jpg"]


def test_csv_cells_a_spreadsheet_would_run_are_neutralised_json_and_parquet_keep_them(client):
    names = FORMULA_NAMES + SAFE_NAMES
    response = _post_archive(client, _zip({name: _jpeg(i) for i, name in enumerate(names)}))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    exported = client.get(f"/v1/jobs/{job_id}/results.csv")
    assert exported.status_code == 200, exported.text
    # newline="": a CR inside a quoted cell is data, not a line end.
    rows = list(csv.DictReader(io.StringIO(exported.text, newline="")))
    assert [row["source"] for row in rows] == [f"'{name}" for name in FORMULA_NAMES] + SAFE_NAMES
    assert all(row["index"].isdigit() for row in rows)
    items = client.get(f"/v1/jobs/{job_id}/results").json()["items"]
    assert [item["source"] for item in items] == names
    table = pq.read_table(io.BytesIO(client.get(f"/v1/jobs/{job_id}/results.parquet").content))
    assert table.column("source").to_pylist() == names


def test_a_callback_url_without_a_webhook_secret_is_refused(client):
    """This API has no IMAGEBATCH_WEBHOOK_SECRET: a signature would use an empty key anyone can forge."""
    url = "https://hooks.example.org/done"
    form = client.post("/v1/jobs", files=[("files", ("a.jpg", _jpeg(1)))], data={"callback_url": url})
    manifest = client.post("/v1/jobs", json={"uris": ["https://images.example.org/a.jpg"], "callback_url": url})
    for response in (form, manifest):
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail.startswith("callback_url: ") and "IMAGEBATCH_WEBHOOK_SECRET is not set" in detail
    assert client.get("/v1/jobs").json()["items"] == []
