"""Shared fixtures for the worker tests: random-weight checkpoints, sample images, scratch services."""

import http.server
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from skimage import data as skdata

from imagebatch.core.catalog import MODELS
from imagebatch.worker.context import WorkerContext
from imagebatch.worker.reader import Reader
from tests.harness.services import clean_env, private_redis, scratch_database

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("chunk_driver.py")
PG_SCRATCH_DB = "imagebatch_worker_test"
REDIS_DB = 12  # this test area's own Redis database

ORIENTATION = 0x0112


@pytest.fixture(scope="package")
def reader(worker_ctx: WorkerContext) -> Reader:
    return worker_ctx.reader


@pytest.fixture(scope="package")
def reference_resnet18(torch_home: Path) -> torchvision.models.ResNet:
    """torchvision's plain model from the same file, as a user would build it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(torch_home))
        weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
        return torchvision.models.resnet18(weights=weights).eval()


def write_sample_images(folder: Path) -> dict[str, Path]:
    """Real photographs in the shapes and modes a bulk job meets, written in several formats."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "rgb_jpeg": folder / "chelsea.jpg",
        "small_png": folder / "small.png",
        "gray_png": folder / "camera.png",
        "rgba_png": folder / "logo.png",
        "palette_png": folder / "coffee-palette.png",
        "exif_rotated_jpeg": folder / "rocket-rotated.jpg",
    }
    Image.fromarray(skdata.chelsea()).save(paths["rgb_jpeg"], quality=90)
    Image.fromarray(skdata.astronaut()).resize((96, 64)).save(paths["small_png"])
    Image.fromarray(skdata.camera()).resize((300, 300)).save(paths["gray_png"])
    Image.fromarray(skdata.logo()).save(paths["rgba_png"])
    Image.fromarray(skdata.coffee()).convert("P", palette=Image.Palette.ADAPTIVE).save(paths["palette_png"])
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # stored landscape, displayed rotated 90° clockwise (portrait)
    Image.fromarray(skdata.rocket()).resize((320, 200)).save(paths["exif_rotated_jpeg"], exif=exif, quality=90)
    return paths


@pytest.fixture(scope="package")
def sample_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_sample_images(tmp_path_factory.mktemp("samples"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on a free port: (base URL, the directory it serves)."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _QuietHandler(*a, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A freshly created scratch PostgreSQL database, dropped afterwards."""
    with scratch_database(PG_SCRATCH_DB) as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    with private_redis(REDIS_DB) as url:
        yield url


def worker_env(tmp_path: Path, torch_home: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment of a worker-side subprocess: its own data dir, database, blobs and weights."""
    env = clean_env(
        PYTHONPATH=str(REPO),
        TORCH_HOME=str(torch_home),
        IMAGEBATCH_DATA_DIR=str(tmp_path / "data"),
        IMAGEBATCH_DATABASE_URL=database_url,
        IMAGEBATCH_STORAGE_URL=str(tmp_path / "blobs"),
        IMAGEBATCH_DECODE_THREADS="2",
        IMAGEBATCH_TORCH_THREADS="2",
        # Results are held to torchvision's reference pipeline; fast decode has its own tests.
        IMAGEBATCH_DECODE_MODE="exact",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="package")
def make_env() -> Callable[..., dict[str, str]]:
    return worker_env


@pytest.fixture(scope="package")
def write_samples() -> Callable[[Path], dict[str, Path]]:
    return write_sample_images


@pytest.fixture
def run_driver(tmp_path: Path) -> Callable[..., dict]:
    """Run tests/worker/chunk_driver.py in a fresh process (settings are read at import)."""

    def run(env: dict[str, str], **spec) -> dict:
        spec_path = tmp_path / f"spec-{uuid.uuid4().hex[:8]}.json"
        spec_path.write_text(json.dumps(spec))
        done = subprocess.run(
            [sys.executable, str(DRIVER), str(spec_path)],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"driver failed:\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run


def reference_probabilities(model: torchvision.models.ResNet, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax, avgpool features) of torchvision's plain NCHW fp32 model, via a forward hook."""
    pooled: list[torch.Tensor] = []
    hook = model.avgpool.register_forward_hook(lambda _m, _i, out: pooled.append(out.flatten(1)))
    try:
        with torch.no_grad():
            probs = torch.softmax(model(batch), dim=1)
    finally:
        hook.remove()
    return probs, pooled[0]


@pytest.fixture(scope="package")
def reference() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    return reference_probabilities


@pytest.fixture(scope="package")
def resnet18_file(torch_home: Path) -> Path:
    return torch_home / "hub" / "checkpoints" / MODELS["resnet18"].weights_file
