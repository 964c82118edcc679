"""POST /v1/jobs over real HTTP: uploads, archives and URI manifests become rows, blobs and messages."""

import io
import os
import tarfile
import zipfile

import pytest
from sqlalchemy.orm import Session

from imagebatch.db.models import Job
from tests.api.conftest import CHUNK_SIZE
from tests.api.helpers import image_rows, job_count, submit_uris


def _queue_length(api, queue: str) -> int:
    if api.redis_url:
        import redis

        return redis.Redis.from_url(api.redis_url).llen(queue)
    return len(api.messages(queue))


def _blob_dirs(api) -> set[str]:
    return {p.name for p in api.blobs.iterdir()} if api.blobs.exists() else set()


def test_files_are_stored_as_rows_blobs_and_one_message_per_chunk(api):
    # One file larger than the 1 MiB in-memory spool, so the on-disk path is exercised too.
    payloads = [(f"img{i}.png", os.urandom(2000 + i)) for i in range(4)]
    payloads.append(("big photo.JPG", os.urandom(3 * 1024 * 1024)))
    before = _queue_length(api, "imagebatch.resnet50")
    response = api.client.post(
        "/v1/jobs",
        files=[("files", (name, data, "image/png")) for name, data in payloads],
        data={"model": "resnet50", "top_k": "3", "store_probabilities": "true", "precision": "bf16"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    job_id = job["id"]
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    assert (job["state"], job["model"], job["top_k"], job["store_probabilities"], job["precision"]) == (
        "queued",
        "resnet50",
        3,
        True,
        "bf16",
    )
    assert job["counts"] == {"total": 5, "succeeded": 0, "failed": 0, "pending": 5, "cancelled": 0}
    assert job["progress"] == 0 and job["images_per_second"] is None and job["eta_seconds"] is None
    assert job["timestamps"]["created"] and job["timestamps"]["queued"] and not job["timestamps"]["running"]
    assert job["links"]["csv"] == f"/v1/jobs/{job_id}/results.csv"

    rows = image_rows(api, job_id)
    exts = [".png"] * 4 + [".jpg"]
    assert [(r.idx, r.source, r.location, r.status) for r in rows] == [
        (i, name, f"blob:{job_id}/{i:06d}{ext}", "pending")
        for i, ((name, _), ext) in enumerate(zip(payloads, exts, strict=True))
    ]
    for i, ((_, data), ext) in enumerate(zip(payloads, exts, strict=True)):
        assert (api.blobs / job_id / f"{i:06d}{ext}").read_bytes() == data

    mine = [(task, args) for task, args in api.messages("imagebatch.resnet50") if args[0] == job_id]
    assert CHUNK_SIZE == 4
    assert mine == [("imagebatch.process_chunk", [job_id, 0, 4]), ("imagebatch.process_chunk", [job_id, 4, 5])]
    assert _queue_length(api, "imagebatch.resnet50") - before == 2
    assert api.client.get(f"/v1/jobs/{job_id}").json()["counts"]["pending"] == 5


def test_default_model_goes_to_the_resnet18_queue(api):
    before = _queue_length(api, "imagebatch.resnet18")
    parts = [(f'name="files"; filename="{i}.jpg"', b"x" * (i + 1)) for i in range(9)]
    # What a browser sends for a file input with nothing chosen, and httpx's version of it.
    parts += [('name="files"; filename=""', b""), ('name="files"', b""), ('name="archive"; filename=""', b"")]
    body = (
        b"".join(
            b"--XyZ\r\nContent-Disposition: form-data; " + head.encode() + b"\r\n\r\n" + data + b"\r\n"
            for head, data in parts
        )
        + b"--XyZ--\r\n"
    )
    response = api.client.post("/v1/jobs", content=body, headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["model"], job["top_k"], job["precision"], job["counts"]["total"]) == ("resnet18", 5, "auto", 9)
    assert _queue_length(api, "imagebatch.resnet18") - before == 3  # chunks [0,4) [4,8) [8,9)


def _zip(members: dict[str, bytes], symlinks: tuple[str, ...] = (), dirs: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in dirs:
            archive.writestr(zipfile.ZipInfo(name), b"")
        for name, data in members.items():
            archive.writestr(name, data)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, b"/etc/passwd")
    return buffer.getvalue()


def test_zip_archive_images_at_any_depth_and_skipped_members(api):
    images = {"photos/a.jpg": b"A" * 100, "photos/deep/er/b.PNG": b"B" * 200, "c.jpeg": b"C"}
    others = {"readme.txt": b"hi", "../evil.jpg": b"E", "/abs.jpg": b"F", "__MACOSX/photos/._a.jpg": b"M"}
    data = _zip({**images, **others}, symlinks=("link.jpg",), dirs=("photos/",))
    response = api.client.post("/v1/jobs", files={"archive": ("set.zip", data, "application/zip")}, data={"top_k": "2"})
    assert response.status_code == 202, response.text
    job = response.json()
    rows = image_rows(api, job["id"])
    assert [r.source for r in rows] == list(images)
    for row, content in zip(rows, images.values(), strict=True):
        key = row.location.removeprefix("blob:")
        assert key.startswith(f"{job['id']}/{row.idx:06d}")
        assert (api.blobs / key).read_bytes() == content
    reasons = {entry["source"]: entry["reason"] for entry in job["skipped"]}
    assert set(reasons) == {"photos/", "readme.txt", "../evil.jpg", "/abs.jpg", "__MACOSX/photos/._a.jpg", "link.jpg"}
    assert reasons["../evil.jpg"].startswith("unsafe path") and reasons["/abs.jpg"].startswith("unsafe path")
    assert reasons["link.jpg"] == "not a regular file" and reasons["photos/"] == "directory"
    assert "not an image" in reasons["readme.txt"]
    assert not (api.blobs.parent / "evil.jpg").exists()
    assert api.client.get(f"/v1/jobs/{job['id']}").json()["skipped"] == job["skipped"]


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        folder = tarfile.TarInfo("set/sub")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        link = tarfile.TarInfo("set/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tar_gz_archive(api):
    data = _tar_gz({"set/sub/x.png": b"X" * 50, "set/notes.md": b"#", "../up.png": b"U", "set/y.webp": b"Y"})
    job = api.client.post("/v1/jobs", files={"archive": ("set.tgz", data)}).json()
    rows = image_rows(api, job["id"])
    assert [(r.source, (api.blobs / r.location.removeprefix("blob:")).read_bytes()) for r in rows] == [
        ("set/sub/x.png", b"X" * 50),
        ("set/y.webp", b"Y"),
    ]
    reasons = {entry["source"]: entry["reason"] for entry in job["skipped"]}
    assert reasons == {
        "set/sub": "directory",
        "set/link.png": "not a regular file",
        "set/notes.md": "not an image (by extension)",
        "../up.png": "unsafe path: contains '..'",
    }


@pytest.mark.parametrize(
    "name, data, fragment",
    [
        ("empty.zip", _zip({"readme.txt": b"no images here"}), "contains no images"),
        ("evil.zip", _zip({"../evil.jpg": b"E"}), "contains no images"),
        ("empty.tar.gz", _tar_gz({}), "contains no images"),
        ("fake.zip", b"this is not an archive at all" * 20, "not a zip or tar archive"),
    ],
)
def test_archives_without_images_are_rejected(api, name, data, fragment):
    jobs_before, blobs_before = job_count(api), _blob_dirs(api)
    response = api.client.post("/v1/jobs", files={"archive": (name, data)})
    assert response.status_code == 422
    assert fragment in response.json()["detail"]
    assert job_count(api) == jobs_before and _blob_dirs(api) == blobs_before


FILE = ("files", ("a.jpg", b"a", "image/jpeg"))


@pytest.mark.parametrize(
    "request_kwargs, status, fragment",
    [
        ({"files": [FILE], "data": {"model": "resnet34"}}, 422, "model: must be one of resnet18, resnet50"),
        ({"files": [FILE], "data": {"top_k": "0"}}, 422, "top_k: must be between 1 and 20"),
        ({"files": [FILE], "data": {"top_k": "21"}}, 422, "top_k"),
        ({"files": [FILE], "data": {"top_k": "many"}}, 422, "top_k"),
        ({"files": [FILE], "data": {"precision": "fp8"}}, 422, "precision"),
        ({"files": [FILE], "data": {"decode": "sloppy"}}, 422, "decode: must be one of fast, exact"),
        ({"files": [FILE], "data": {"store_probabilities": "maybe"}}, 422, "store_probabilities"),
        ({"files": [FILE], "data": {"colour": "red"}}, 422, "unknown form field 'colour'"),
        ({"files": [FILE, ("top_k", (None, "3")), ("top_k", (None, "4"))]}, 422, "top_k: given more than once"),
        ({"data": {"model": "resnet18"}, "files": [("model2", (None, "x"))]}, 422, "unknown form field"),
        ({"files": [("files", (None, "not a file"))]}, 422, "files: must be a file upload"),
        ({"files": [("model", (None, "resnet18"))]}, 422, "no images"),
        ({"files": [FILE, ("archive", ("a.zip", _zip({"a.jpg": b"a"})))]}, 422, "not both"),
        ({"content": b"just text", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "invalid JSON"),
        (
            {"content": b"garbage", "headers": {"content-type": "multipart/form-data; boundary=XyZ"}},
            400,
            "malformed multipart body",
        ),
        ({"content": b"--XyZ--", "headers": {"content-type": "multipart/form-data"}}, 400, "without a boundary"),
        ({"json": ["a.jpg"]}, 422, "uris"),
        ({"json": {"uris": "https://example.com/a.jpg"}}, 422, "uris: must be a list"),
        ({"json": {"uris": []}}, 422, "no images"),
        ({"json": {"uris": ["https://example.com/a.jpg"], "topk": 3}}, 422, "topk: unknown option"),
        ({"json": {"uris": ["https://example.com/a.jpg"], "top_k": 0}}, 422, "top_k"),
        ({"json": {"uris": ["https://example.com/a.jpg"], "model": "vit"}}, 422, "model"),
    ],
)
def test_bad_submissions_are_4xx_and_leave_nothing_behind(api, request_kwargs, status, fragment):
    jobs_before, blobs_before = job_count(api), _blob_dirs(api)
    response = api.client.post("/v1/jobs", **request_kwargs)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    assert job_count(api) == jobs_before and _blob_dirs(api) == blobs_before


@pytest.mark.parametrize(
    "field, name",
    [
        ("files", "a" * 5000 + ".jpg"),  # was 400 "Maximum header size exceeded" (python-multipart)
        ("files", "é" * 1100 + ".jpg"),  # under python-multipart's 4 KiB header, over 1024 characters
        ("files", "b" * 200_000 + ".jpg"),
        ("archive", "z" * 5000 + ".zip"),
    ],
)
def test_a_file_name_over_the_limit_is_400_naming_it(api, field, name):
    jobs_before, blobs_before = job_count(api), _blob_dirs(api)
    data = _zip({"a.jpg": b"a"}) if field == "archive" else b"a"
    response = api.client.post("/v1/jobs", files=[("files", ("first.jpg", b"x")), (field, (name, data))])
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"{field}: file name {name[:20]!r}"[:-1]), detail
    assert "longer than 1024 characters" in detail and "IMAGEBATCH_MAX_FILENAME_LENGTH" in detail, detail
    assert len(detail) < 500
    assert job_count(api) == jobs_before and _blob_dirs(api) == blobs_before


def test_a_long_file_name_is_kept_whole_as_the_source_under_a_short_key(api):
    name = "photos/" + "é" * 1010 + ".jpeg"  # 1022 characters, 2033 bytes: far over a file system's 255
    response = api.client.post("/v1/jobs", files=[("files", (name, b"jpeg bytes"))])
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    (row,) = image_rows(api, job_id)
    assert (row.source, row.location) == (name, f"blob:{job_id}/000000.jpeg")
    assert (api.blobs / job_id / "000000.jpeg").read_bytes() == b"jpeg bytes"


def test_uri_manifest_local_paths_and_urls(api):
    (api.roots / "sub").mkdir(exist_ok=True)
    (api.roots / "a.jpg").write_bytes(b"a")
    (api.roots / "sub" / "b.jpg").write_bytes(b"b")
    uris = [
        str(api.roots / "a.jpg"),
        f"file://{api.roots / 'sub' / 'b.jpg'}",
        "https://example.com/c.jpg?size=large",
        f"{api.roots}/sub/../a.jpg",
    ]
    job = submit_uris(api, uris, top_k=1, store_probabilities=False)
    rows = image_rows(api, job["id"])
    assert [(r.source, r.location) for r in rows] == [
        (uris[0], f"file:{api.roots / 'a.jpg'}"),
        (uris[1], f"file:{api.roots / 'sub' / 'b.jpg'}"),
        (uris[2], uris[2]),
        (uris[3], f"file:{api.roots / 'a.jpg'}"),
    ]
    assert not _blob_dirs(api) & {job["id"]}


def test_uri_manifest_rejects_paths_outside_roots(api, tmp_path):
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"s")
    link = api.roots / "innocent.jpg"
    if not link.is_symlink():
        link.symlink_to(outside)
    good = str(api.roots / "a.jpg")
    cases = [
        (str(outside), "outside the allowed roots"),
        # Starts with the root, then climbs out with '..'.
        (f"{api.roots}/{os.path.relpath(outside, api.roots)}", "outside the allowed roots"),
        (str(link), "outside the allowed roots"),
        (f"file://{outside}", "outside the allowed roots"),
        ("relative/a.jpg", "must be absolute"),
        ("ftp://example.com/a.jpg", "unsupported scheme 'ftp'"),
        ("file://otherhost/a.jpg", "names another host"),
        ("https:///nohost.jpg", "has no host"),
        (42, "must be a non-empty path or URL string"),
    ]
    jobs_before = job_count(api)
    for entry, fragment in cases:
        response = api.client.post("/v1/jobs", json={"uris": [good, entry]})
        assert response.status_code == 422, (entry, response.text)
        detail = response.json()["detail"]
        assert detail.startswith("uris[1]: ") and fragment in detail, (entry, detail)
    assert job_count(api) == jobs_before


MALFORMED_URLS = [
    ("http://[::1/", "not a valid URL"),  # urlparse: ValueError "Invalid IPv6 URL" (was a 500)
    ("https://[zz]/", "not a valid URL"),
    ("http://images.example.com:99999/a.jpg", "port"),  # was accepted, then failed as `unreadable`
    ("http://images.example.com:abc/", "port"),
    ("http://images.example.com:-1/a.jpg", "port"),
    ("http://images.example.com:0/a.jpg", "port"),
    ("http://images.example.com:+80/a.jpg", "port"),
    ("http://exa\x01mple.com/a.jpg", "not a valid URL"),
    ("http://exa mple.com/a.jpg", "not a valid URL"),
    ("http://xn--zz.com/a.jpg", "not a valid URL"),
    ("file://[::1/a.jpg", "not a valid URL"),
]


@pytest.mark.parametrize("url, fragment", MALFORMED_URLS)
def test_malformed_urls_are_422_naming_the_entry(api, url, fragment):
    good = [f"https://images.example.com/{i}.jpg" for i in range(3)]
    jobs_before = job_count(api)
    response = api.client.post("/v1/jobs", json={"uris": [*good, url]})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("uris[3]: ") and fragment in detail, detail
    assert job_count(api) == jobs_before


def test_local_paths_disabled_without_roots(degraded_api):
    response = degraded_api.client.post("/v1/jobs", json={"uris": ["/tmp/a.jpg"]})
    assert response.status_code == 422
    assert "uris[0]: local paths are disabled" in response.json()["detail"]


def test_broker_down_withdraws_the_job_and_answers_503(degraded_api):
    """A job whose chunks cannot be sent is not left behind: the 503 matches what exists."""
    jobs_before = job_count(degraded_api)
    response = degraded_api.client.post("/v1/jobs", files=[FILE, FILE])
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["detail"].startswith("broker unavailable, job not created")
    assert job_count(degraded_api) == jobs_before
    assert not any(degraded_api.blobs.rglob("*.*")), list(degraded_api.blobs.rglob("*"))


@pytest.mark.parametrize(
    ("options", "decode"),
    [({"precision": "fp32"}, "exact"), ({"precision": "fp32", "decode": "fast"}, "fast"), ({}, "fast")],
)
def test_the_decode_mode_is_fixed_at_submission(api, options, decode):
    """fp32 and nothing said about decoding: exact; otherwise the option, or IMAGEBATCH_DECODE_MODE (fast)."""
    job = submit_uris(api, ["https://images.example.com/a.jpg"], **options)
    assert job["decode"] == decode
    with Session(api.engine) as session:
        row = session.get(Job, job["id"])
        assert (row.decode, row.decode_mode) == (options.get("decode"), decode)


def test_int8_is_accepted_and_refused_where_the_server_turned_it_off(api, tmp_path):
    from tests.api.conftest import start_api

    accepted = api.client.post("/v1/jobs", files=[FILE], data={"precision": "int8"})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["precision"] == "int8"
    if api.redis_url:  # the switch is the API's, whatever the backend: one start is enough
        return
    off = start_api(tmp_path, database_url=None, redis_url=None, extra_env={"IMAGEBATCH_INT8_ENABLED": "false"})
    try:
        refused = off.client.post("/v1/jobs", files=[FILE], data={"precision": "int8"})
        assert refused.status_code == 422
        assert "IMAGEBATCH_INT8_ENABLED=false" in refused.json()["detail"]
        assert off.client.post("/v1/jobs", files=[FILE], data={"precision": "bf16"}).status_code == 202
    finally:
        off.stop()
