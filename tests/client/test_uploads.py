"""How `submit` inputs are classified and expanded, without a server."""

import io
from pathlib import Path

import pytest

from imagebatch.client.uploads import LazyFile, collect_files, collect_uris, expand_images, read_manifest


def test_expand_images_names_are_relative_to_the_given_folder(tmp_path: Path):
    (tmp_path / "set" / "deep").mkdir(parents=True)
    for name in ("set/a.JPG", "set/deep/b.png", "set/readme.txt", "set/deep/c.webp"):
        (tmp_path / name).write_bytes(b"x")
    found = expand_images([tmp_path / "set"])
    assert [name for name, _ in found] == ["set/a.JPG", "set/deep/b.png", "set/deep/c.webp"]


def test_archive_must_come_alone(tmp_path: Path):
    (tmp_path / "a.zip").write_bytes(b"PK")
    (tmp_path / "b.jpg").write_bytes(b"x")
    assert [n for n, _, _ in collect_files([tmp_path / "a.zip"])] == ["a.zip"]
    with pytest.raises(ValueError, match="on its own"):
        collect_files([tmp_path / "a.zip", tmp_path / "b.jpg"])


def test_empty_folder_is_an_error(tmp_path: Path):
    with pytest.raises(ValueError, match="no image files"):
        collect_files([tmp_path])


def test_manifests_and_uris(tmp_path: Path):
    txt = tmp_path / "m.txt"
    txt.write_text("# comment\nhttp://h/a.jpg\n  \nfile:///data/b.jpg\n")
    assert read_manifest(txt) == ["http://h/a.jpg", "file:///data/b.jpg"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"uris": "http://h/a.jpg"}')
    with pytest.raises(ValueError, match="JSON list"):
        read_manifest(bad)
    assert collect_uris(["https://h/x.png", txt]) == ["https://h/x.png", "http://h/a.jpg", "file:///data/b.jpg"]
    assert collect_uris([tmp_path / "photo.jpg"]) is None


def test_lazy_file_reports_size_and_closes_at_end(tmp_path: Path):
    path = tmp_path / "f.bin"
    payload = bytes(range(256)) * 1000
    path.write_bytes(payload)
    counted: list[int] = []
    lazy = LazyFile(path, len(payload), counted.append)
    assert lazy.seek(0, io.SEEK_END) == len(payload) and lazy._fh is None  # sizing opens nothing
    lazy.seek(0)
    data = b"".join(iter(lambda: lazy.read(65536), b""))
    assert data == payload and sum(counted) == len(payload)
    assert lazy._fh is None
