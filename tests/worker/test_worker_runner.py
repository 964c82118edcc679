"""process_chunk end to end against real databases: rows, counts, state, labels, reproducibility."""

import hashlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from torchvision.models import ResNet18_Weights

from imagebatch.db.models import Image as ImageRow
from imagebatch.db.models import Job, LabelSet

JOB_ID = "job0000worker0000test000000000a"
TRANSFORM = ResNet18_Weights.IMAGENET1K_V1.transforms()


def _database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'worker-test.sqlite'}"


def _mixed_job(
    tmp_path: Path, http_root: tuple[str, Path], write_samples: Callable
) -> tuple[list[list[str]], dict[str, Path], dict[str, str]]:
    """Ten images: five good ones over blob:, file: and http:, five broken ones; expected categories."""
    samples = write_samples(tmp_path / "samples")
    blobs = tmp_path / "blobs" / JOB_ID
    blobs.mkdir(parents=True)
    base, www = http_root
    for name in ("rgb_jpeg", "rgba_png", "exif_rotated_jpeg"):
        shutil.copy(samples[name], blobs / samples[name].name)
    shutil.copy(samples["palette_png"], www / "remote.png")
    (blobs / "empty.jpg").write_bytes(b"")
    (blobs / "notes.jpg").write_text("plain text, not a JPEG\n")
    data = samples["rgb_jpeg"].read_bytes()
    (blobs / "cut.jpg").write_bytes(data[: len(data) // 2])
    images = [
        ["chelsea.jpg", f"blob:{JOB_ID}/chelsea.jpg"],
        ["empty.jpg", f"blob:{JOB_ID}/empty.jpg"],
        ["logo.png", f"blob:{JOB_ID}/logo.png"],
        ["notes.jpg", f"blob:{JOB_ID}/notes.jpg"],
        ["camera.png", f"file:{samples['gray_png']}"],
        ["cut.jpg", f"blob:{JOB_ID}/cut.jpg"],
        ["rocket.jpg", f"blob:{JOB_ID}/rocket-rotated.jpg"],
        ["gone.jpg", f"blob:{JOB_ID}/gone.jpg"],
        [f"{base}/remote.png", f"{base}/remote.png"],
        [f"{base}/missing.png", f"{base}/missing.png"],
    ]
    good = {
        "chelsea.jpg": samples["rgb_jpeg"],
        "logo.png": samples["rgba_png"],
        "camera.png": samples["gray_png"],
        "rocket.jpg": samples["exif_rotated_jpeg"],
        f"{base}/remote.png": samples["palette_png"],
    }
    bad = {
        "empty.jpg": "empty_file",
        "notes.jpg": "unreadable",
        "cut.jpg": "truncated",
        "gone.jpg": "not_found",
        f"{base}/missing.png": "fetch_failed",
    }
    return images, good, bad


def _reference(model, path: Path, reference) -> tuple[np.ndarray, np.ndarray]:
    with Image.open(path) as im:
        x = TRANSFORM(ImageOps.exif_transpose(im).convert("RGB")).unsqueeze(0)
    probs, features = reference(model, x)
    return probs[0].numpy(), features[0].numpy()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_mixed_job_is_processed_and_recorded(
    backend,
    tmp_path,
    request,
    http_root,
    torch_home,
    resnet18_file,
    reference_resnet18,
    reference,
    run_driver,
    make_env,
    write_samples,
) -> None:
    url = _database_url(backend, tmp_path, request)
    images, good, bad = _mixed_job(tmp_path, http_root, write_samples)
    env = make_env(tmp_path, torch_home, url)
    out = run_driver(env, job_id=JOB_ID, images=images, chunk_size=4, top_k=3, store_probabilities=True)
    assert out["chunks"] == [[0, 4], [4, 8], [8, 10]]
    assert sum(r["succeeded"] for r in out["reports"]) == 5

    engine = create_engine(url)
    with Session(engine) as session:
        job = session.get(Job, JOB_ID)
        assert job.state == "completed" and job.completed_at is not None and job.running_at is not None
        by_status = dict(
            session.execute(
                select(ImageRow.status, func.count()).where(ImageRow.job_id == JOB_ID).group_by(ImageRow.status)
            ).all()
        )
        assert by_status == {"ok": 5, "error": 5}
        rows = {row.source: row for row in session.scalars(select(ImageRow).where(ImageRow.job_id == JOB_ID))}
        for source, category in bad.items():
            row = rows[source]
            assert (row.status, row.error_category) == ("error", category), (source, row.error_message)
            assert row.error_message and row.processed_at is not None and row.embedding is None
        for source, path in good.items():
            _assert_ok_row(rows[source], *_reference(reference_resnet18, path, reference))
        assert (rows["rocket.jpg"].width, rows["rocket.jpg"].height) == (200, 320)
        assert rows["camera.png"].mode == "L" and rows["logo.png"].format == "PNG"
        labels = session.get(LabelSet, "ResNet18_Weights.IMAGENET1K_V1")
        assert labels is not None and labels.labels[:2] == ["tench", "goldfish"] and len(labels.labels) == 1000
        record = job.reproducibility
        refs = {source: row.renditions for source, row in rows.items()}
    engine.dispose()
    assert record["weights_sha256"] == hashlib.sha256(resnet18_file.read_bytes()).hexdigest()
    assert record["weights"] == "ResNet18_Weights.IMAGENET1K_V1" and record["weights_file"] == resnet18_file.name
    assert (record["precision"], record["device"], record["embedding_dtype"]) == ("fp32", "cpu", "float32")
    assert record["torch"] == torch.__version__ and "resize_size=[256]" in record["transforms"]
    assert record["batch_size"] == 4
    assert (record["decode"], record["decode_requested"]) == ("exact", None)
    _assert_thumbnails(tmp_path / "blobs", refs, good)


def _assert_thumbnails(blobs: Path, refs: dict[str, dict | None], good: dict[str, Path]) -> None:
    """Each decoded image's JPEG thumbnail, and no other, lies in a rendition pack of its chunk under the
    job's prefix, where its row says, whatever its source."""
    assert {source for source, ref in refs.items() if ref} == set(good)
    packs = sorted(p.relative_to(blobs).as_posix() for p in (blobs / JOB_ID / "renditions").iterdir())
    assert len(packs) == 3  # one per chunk: [0, 4), [4, 8), [8, 10)
    thumbnails = {}
    for source, path in good.items():
        ref = refs[source]
        assert ref["key"] in packs and "preview" not in ref  # JPEG and PNG: browsers show the originals
        offset, length = ref["thumbnail"]
        data = (blobs / ref["key"]).read_bytes()[offset : offset + length]
        with Image.open(io.BytesIO(data)) as thumb, Image.open(path) as original:
            shown = ImageOps.exif_transpose(original)
            assert thumb.format == "JPEG" and thumb.mode == "RGB" and max(thumb.size) == 256
            assert abs(thumb.width / thumb.height - shown.width / shown.height) < 0.02, source
            thumbnails[source] = thumb.size
    assert thumbnails["rocket.jpg"] == (160, 256)  # stored 320 x 200, shown portrait (EXIF orientation 6)


def _assert_ok_row(row: ImageRow, ref_probs: np.ndarray, ref_features: np.ndarray) -> None:
    assert row.status == "ok" and row.error_category is None and row.processed_at is not None
    probs = np.frombuffer(row.probabilities, dtype="<f4")
    embedding = np.frombuffer(row.embedding, dtype="<f4")
    assert probs.shape == (1000,) and embedding.shape == (512,)
    assert np.abs(probs - ref_probs).max() <= 1e-4
    np.testing.assert_allclose(embedding, ref_features, rtol=1e-4, atol=1e-4)
    ranked = np.argsort(-ref_probs)
    assert row.top1_index == ranked[0] and [t["index"] for t in row.topk] == ranked[:3].tolist()
    assert row.topk[0]["probability"] == pytest.approx(float(ref_probs[ranked[0]]), abs=1e-4)
    assert row.margin == pytest.approx(float(ref_probs[ranked[0]] - ref_probs[ranked[1]]), abs=1e-4)
    assert row.top5_mean == pytest.approx(float(ref_probs[ranked[:5]].mean()), abs=1e-4)
    positive = ref_probs[ref_probs > 0].astype(np.float64)
    assert row.entropy == pytest.approx(float(-(positive * np.log(positive)).sum()), abs=1e-3)
    assert row.width and row.height and row.mean_r is not None and row.std_b is not None


def _job_and_rows(url: str) -> tuple[Job, list[ImageRow]]:
    engine = create_engine(url)
    with Session(engine) as session:
        job = session.get(Job, JOB_ID)
        rows = list(session.scalars(select(ImageRow).where(ImageRow.job_id == JOB_ID).order_by(ImageRow.idx)))
    engine.dispose()
    return job, rows


def test_float16_embeddings_without_probabilities(
    tmp_path,
    torch_home,
    reference_resnet18,
    reference,
    run_driver,
    make_env,
    write_samples,
) -> None:
    samples = write_samples(tmp_path / "samples")
    url = f"sqlite:///{tmp_path / 'f16.sqlite'}"
    env = make_env(tmp_path, torch_home, url, IMAGEBATCH_EMBEDDING_DTYPE="float16")
    run_driver(env, job_id=JOB_ID, images=[["a", f"file:{samples['rgb_jpeg']}"]], chunk_size=4, precision="auto")
    job, (row,) = _job_and_rows(url)
    _, ref_features = _reference(reference_resnet18, samples["rgb_jpeg"], reference)
    embedding = np.frombuffer(row.embedding, dtype="<f2")
    assert embedding.shape == (512,) and row.probabilities is None
    np.testing.assert_allclose(embedding.astype(np.float32), ref_features, rtol=0.05, atol=0.05)  # bf16 forward
    assert job.reproducibility["embedding_dtype"] == "float16"
    assert job.reproducibility["precision_requested"] == "auto"
    assert job.reproducibility["precision"] in ("bf16", "fp32")
    assert len(row.topk) == 5


@pytest.mark.parametrize(
    ("options", "decode", "tolerance"),
    [({"precision": "fp32"}, "exact", 1e-5), ({"precision": "fp32", "decode": "fast"}, "fast", None)],
    ids=["fp32-says-nothing", "fp32-asks-fast"],
)
def test_each_job_decodes_in_its_own_mode(
    tmp_path, torch_home, bench_photos, reference_resnet18, reference, run_driver, make_env, options, decode, tolerance
) -> None:
    """A worker whose setting is fast decodes an fp32 job exactly unless the job asks otherwise."""
    url = f"sqlite:///{tmp_path / 'modes.sqlite'}"
    env = make_env(tmp_path, torch_home, url, IMAGEBATCH_DECODE_MODE="fast")
    phone = bench_photos[7]  # 4032 x 3024: fast mode decodes it at 1/8 scale
    run_driver(
        env, job_id=JOB_ID, images=[["phone.jpg", f"file:{phone}"]], chunk_size=4, store_probabilities=True, **options
    )
    job, (row,) = _job_and_rows(url)
    assert (job.reproducibility["decode"], job.reproducibility["decode_requested"]) == (decode, options.get("decode"))
    ref_probs, _ = _reference(reference_resnet18, phone, reference)
    gap = np.abs(np.frombuffer(row.probabilities, dtype="<f4") - ref_probs).max()
    assert gap <= tolerance if tolerance else gap > 1e-4


def test_a_job_deleted_while_its_chunk_runs_leaves_no_thumbnails(
    tmp_path, torch_home, run_driver, make_env, write_samples
) -> None:
    samples = write_samples(tmp_path / "samples")
    url = f"sqlite:///{tmp_path / 'deleted.sqlite'}"
    images = [["cat.jpg", f"file:{samples['rgb_jpeg']}"], ["logo.png", f"file:{samples['rgba_png']}"]]
    run_driver(make_env(tmp_path, torch_home, url), job_id=JOB_ID, images=images, chunk_size=4, delete_during=True)
    job, rows = _job_and_rows(url)
    assert job is None and rows == []
    assert not (tmp_path / "blobs" / JOB_ID).exists()


def test_exhausted_retries_turn_open_images_into_internal_errors(tmp_path, torch_home, run_driver, make_env) -> None:
    url = f"sqlite:///{tmp_path / 'fail.sqlite'}"
    images = [[f"img{i}.jpg", f"file:{tmp_path}/img{i}.jpg"] for i in range(3)]
    out = run_driver(
        make_env(tmp_path, torch_home, url), job_id=JOB_ID, images=images, chunk_size=4, action="fail_chunk"
    )
    assert (out["gave_up"], out["failed_images"]) == (1, 3)  # counted in the worker context's metrics
    job, rows = _job_and_rows(url)
    assert job.state == "completed"
    assert [(r.status, r.error_category) for r in rows] == [("error", "internal")] * 3
    assert "database went away" in rows[0].error_message


def test_unloadable_weights_fail_the_job_with_the_file_named(tmp_path, run_driver, make_env) -> None:
    broken_home = tmp_path / "broken_home"
    (broken_home / "hub" / "checkpoints").mkdir(parents=True)
    (broken_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"not a checkpoint")
    url = f"sqlite:///{tmp_path / 'broken.sqlite'}"
    images = [["a.jpg", f"file:{tmp_path}/a.jpg"]]
    run_driver(make_env(tmp_path, broken_home, url), job_id=JOB_ID, images=images, chunk_size=4)
    job, (row,) = _job_and_rows(url)
    assert job.state == "failed" and job.failed_at is not None
    assert "resnet18-f37072fd.pth" in job.error and "could not be loaded" in job.error
    assert (row.status, row.error_category) == ("error", "job_failed")


def test_unknown_model_fails_the_job(tmp_path, torch_home, run_driver, make_env) -> None:
    url = f"sqlite:///{tmp_path / 'unknown.sqlite'}"
    images = [["a.jpg", f"file:{tmp_path}/a.jpg"]]
    run_driver(make_env(tmp_path, torch_home, url), job_id=JOB_ID, images=images, chunk_size=4, model="resnet999")
    job, _ = _job_and_rows(url)
    assert job.state == "failed" and "unknown model 'resnet999'" in job.error


def test_cancelled_job_is_not_processed(tmp_path, torch_home, run_driver, make_env) -> None:
    url = f"sqlite:///{tmp_path / 'cancel.sqlite'}"
    images = [[f"img{i}.jpg", f"file:{tmp_path}/img{i}.jpg"] for i in range(5)]
    env = make_env(tmp_path, torch_home, url)
    out = run_driver(env, job_id=JOB_ID, images=images, chunk_size=2, cancel_first=True)
    assert out["reports"] == [None, None, None]
    job, rows = _job_and_rows(url)
    assert job.state == "cancelled" and {r.status for r in rows} == {"cancelled"}
