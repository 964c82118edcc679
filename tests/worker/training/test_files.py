"""Atomic writes: a failed write leaves the previous file whole and no temporary behind."""

from pathlib import Path

import pytest

from imagebatch.worker.training.files import atomic_write


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    atomic_write(target, lambda f: f.write(b"epoch 1"))

    def crash_halfway(f) -> None:
        f.write(b"epoch 2, half writ")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash_halfway)
    assert target.read_bytes() == b"epoch 1"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
