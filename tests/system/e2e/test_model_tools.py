"""Model exports and Grad-CAM through a real API and worker (PostgreSQL + Redis): 202 while a worker builds,
then files that agree with the service's stored results and with a Grad-CAM computed here."""

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image, ImageOps

from imagebatch.core.catalog import MODELS
from imagebatch.worker.samples import write_sample_photos
from tests.harness.images import write_broken
from tests.harness.stack import wait_for_job

pytestmark = pytest.mark.e2e
MAX_DP = 1e-4
MIN_CORRELATION = 0.99
PHOTOS = 5  # astronaut, cat, coffee, rocket, cameraman
BROKEN = PHOTOS  # the index of the truncated JPEG


def fetch_built(client: httpx.Client, url: str, params: dict | None = None, timeout: float = 300) -> httpx.Response:
    """GET until the worker has built it: the first answer is 202 with Location and Retry-After."""
    response = client.get(url, params=params)
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith(url) and int(response.headers["Retry-After"]) > 0
    assert response.json()["state"] == "pending"
    deadline = time.monotonic() + timeout
    while response.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.5)
        response = client.get(response.headers["Location"])
    assert response.status_code == 200, response.text
    return response


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_sample_photos(tmp_path_factory.mktemp("tools_photos"), PHOTOS)


@pytest.fixture(scope="module")
def job(pg_stack, photos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    broken = write_broken(tmp_path_factory.mktemp("tools_broken"))["truncated"]
    files = [("files", (p.name, p.read_bytes())) for p in [*photos, broken]]
    options = {"precision": "fp32", "decode": "exact", "store_probabilities": "true"}
    with httpx.Client(base_url=pg_stack.url, timeout=60) as client:
        response = client.post("/v1/jobs", files=files, data=options)
        assert response.status_code == 202, response.text
        job = wait_for_job(client, response.json()["id"], timeout=600)
        items = client.get(f"/v1/jobs/{job['id']}/results", params={"include": "probabilities", "limit": 100})
    assert job["counts"] == {**job["counts"], "succeeded": PHOTOS, "failed": 1}, job
    found = [item for item in items.json()["items"] if item["probabilities"]]
    job["probabilities"] = {item["index"]: np.asarray(item["probabilities"], dtype=np.float64) for item in found}
    return job


def model_inputs(photos: list[Path]) -> torch.Tensor:
    """torchvision's own preprocessing of the photos (weights.transforms() on the PIL image)."""
    transform = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    images = [ImageOps.exif_transpose(Image.open(p)).convert("RGB") for p in photos]
    return torch.stack([transform(image) for image in images])


def assert_matches_service(logits: np.ndarray, job: dict) -> float:
    """Top-1 and every probability as the service stored them; the largest |Δp|."""
    probabilities = torch.from_numpy(logits).double().softmax(-1).numpy()
    stored = np.stack([job["probabilities"][i] for i in range(PHOTOS)])
    assert (probabilities.argmax(-1) == stored.argmax(-1)).all()
    worst = float(np.abs(probabilities - stored).max())
    assert worst <= MAX_DP, worst
    return worst


def test_onnx_export_runs_in_onnxruntime_like_the_service(pg_client, job, photos, checkpoint_sha256, tmp_path):
    response = fetch_built(pg_client, "/v1/models/resnet18/export", {"format": "onnx"})
    assert response.headers["content-type"] == "application/octet-stream"
    assert 'filename="resnet18.onnx"' in response.headers["content-disposition"]
    path = tmp_path / "resnet18.onnx"
    path.write_bytes(response.content)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["imagebatch.model"] == "resnet18"
    assert props["imagebatch.weights_sha256"] == checkpoint_sha256[MODELS["resnet18"].weights_file]
    assert len(json.loads(props["imagebatch.classes"])) == 1000
    assert json.loads(props["imagebatch.transforms"])["crop"] == [224]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "embedding"]
    logits, embedding = session.run(None, {"input": model_inputs(photos).numpy()})
    assert embedding.shape == (PHOTOS, 512)
    print(f"ONNX round trip: max |dp| {assert_matches_service(logits, job):.2e} over {PHOTOS} photos")
    cached = pg_client.get("/v1/models/resnet18/export", params={"format": "onnx"})
    assert cached.status_code == 200 and cached.content == response.content  # cached: no second build


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_runs_in_torch_like_the_service(pg_client, job, photos, tmp_path):
    response = fetch_built(pg_client, "/v1/models/resnet18/export", {"format": "torchscript"})
    path = tmp_path / "resnet18.pt"
    path.write_bytes(response.content)
    extra = {"imagebatch.json": ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
    assert json.loads(extra["imagebatch.json"])["imagebatch.model"] == "resnet18"
    with torch.inference_mode():
        logits, embedding = module(model_inputs(photos))
    assert embedding.shape == (PHOTOS, 512)
    print(f"TorchScript round trip: max |dp| {assert_matches_service(logits.numpy(), job):.2e}")


def independent_grad_cam(torch_home: Path, image: torch.Tensor, class_index: int) -> np.ndarray:
    """Grad-CAM from the paper, with hooks on layer4 of torchvision's ResNet-18 built from the same file."""
    model = torchvision.models.resnet18()
    checkpoint = torch_home / "hub" / "checkpoints" / MODELS["resnet18"].weights_file
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    model.eval()
    saved: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output: torch.Tensor) -> None:
        saved["activation"] = output
        output.register_hook(lambda grad: saved.__setitem__("gradient", grad))

    model.layer4.register_forward_hook(keep)
    model(image.unsqueeze(0))[0, class_index].backward()
    weights = saved["gradient"].mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * saved["activation"]).sum(dim=1, keepdim=True)).detach()
    return F.interpolate(cam, size=image.shape[1:], mode="bilinear", align_corners=False)[0, 0].numpy()


# Under the seeded random test weights, the top-1 classes of the astronaut and the coffee have positive
# evidence in layer4 (tests/worker/test_gradcam.py); the cat's owes its rank to the fc bias (a flat map).
@pytest.mark.parametrize("index", [0, 2])
def test_gradcam_heatmap_matches_an_independent_grad_cam(pg_client, job, photos, torch_home, index):
    url = f"/v1/jobs/{job['id']}/images/{index}/gradcam"
    response = fetch_built(pg_client, url)
    assert response.headers["content-type"] == "image/png"
    stored = pg_client.get(f"/v1/jobs/{job['id']}/images/{index}").json()
    top1 = int(stored["top_k"][0]["index"])
    assert int(response.headers["X-Class-Index"]) == top1
    heatmap = Image.open(io.BytesIO(response.content))
    assert (heatmap.mode, heatmap.size) == ("L", (224, 224))
    reference = independent_grad_cam(torch_home, model_inputs(photos)[index], top1)
    assert reference.max() > reference.min()
    correlation = float(np.corrcoef(np.asarray(heatmap, dtype=np.float64).ravel(), reference.ravel())[0, 1])
    print(f"Grad-CAM image {index}: correlation {correlation:.5f} with the independent map")
    assert correlation >= MIN_CORRELATION
    # Named by its label, the same class is the same cached map.
    by_label = pg_client.get(url, params={"class": stored["top_k"][0]["label"], "format": "heatmap"})
    assert by_label.status_code == 200 and by_label.content == response.content


def test_gradcam_overlay_is_the_crop_in_colour(pg_client, job):
    response = fetch_built(pg_client, f"/v1/jobs/{job['id']}/images/4/gradcam", {"format": "overlay", "class": "3"})
    overlay = Image.open(io.BytesIO(response.content))
    assert (overlay.format, overlay.mode, overlay.size) == ("PNG", "RGB", (224, 224))
    assert response.headers["X-Class-Index"] == "3"


def test_gradcam_and_export_refusals(pg_client, job):
    base = f"/v1/jobs/{job['id']}/images"
    for value in ("1000", "-1", "not a label"):
        response = pg_client.get(f"{base}/0/gradcam", params={"class": value})
        assert response.status_code == 422 and "class" in response.json()["detail"], response.text
    assert pg_client.get(f"{base}/0/gradcam", params={"format": "jpeg"}).status_code == 422
    failed = pg_client.get(f"{base}/{BROKEN}/gradcam")
    assert failed.status_code == 409 and "failed" in failed.json()["detail"]
    assert pg_client.get(f"{base}/99/gradcam").status_code == 404
    assert pg_client.get("/v1/jobs/nosuchjob/images/0/gradcam").status_code == 404
    assert pg_client.get("/v1/models/nosuchmodel/export").status_code == 404
    assert pg_client.get("/v1/models/resnet18/export", params={"format": "pickle"}).status_code == 422


def _cli(stack, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**stack.env, "IMAGEBATCH_API_URL": stack.url}
    command = [str(Path(sys.executable).parent / "imagebatch"), *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_cli_waits_for_a_gradcam_and_downloads_an_export(pg_stack, pg_client, job, tmp_path):
    # A class nobody asked for yet: the command meets 202 and waits for the worker.
    args = ("gradcam", job["id"], "0", "--class", "7", "--format", "overlay", "--out", "cam.png")
    made = _cli(pg_stack, *args, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "building" in made.stderr
    served = pg_client.get(f"/v1/jobs/{job['id']}/images/0/gradcam", params={"class": "7", "format": "overlay"})
    assert (tmp_path / "cam.png").read_bytes() == served.content
    exported = _cli(pg_stack, "models", "export", "resnet18", "--format", "onnx", "--out", "m.onnx", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert onnx.load(str(tmp_path / "m.onnx")).graph.output[0].name == "logits"
    refused = _cli(pg_stack, "gradcam", job["id"], str(BROKEN), "--out", "x.png", cwd=tmp_path)
    assert refused.returncode == 5 and "failed" in refused.stderr and not (tmp_path / "x.png").exists()


def test_python_client_saves_a_heatmap(pg_stack, job, tmp_path):
    from imagebatch.client import Client

    with Client(pg_stack.url) as client:
        path = client.gradcam(job["id"], 1, tmp_path / "cat.png", class_=0)
    assert Image.open(path).size == (224, 224)


def test_a_build_that_fails_answers_409_with_its_reason(pg_stack, pg_client, job):
    """The rocket's upload is gone from storage: the worker cannot read it again, and says so."""
    blobs = Path(pg_stack.env["IMAGEBATCH_DATA_DIR"]) / "blobs" / job["id"]
    (upload,) = [p for p in blobs.glob("000003*") if p.is_file()]
    upload.unlink()
    url = f"/v1/jobs/{job['id']}/images/3/gradcam"
    response = pg_client.get(url)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 300
    while response.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.5)
        response = pg_client.get(url)
    assert response.status_code == 409, response.text
    assert "could not be built" in response.json()["detail"] and "cannot be read" in response.json()["detail"]
    assert pg_client.get(url).status_code == 409  # the failure is kept, not retried on every request


def test_the_embedded_defaults_build_an_export_too(embedded_stack):
    """SQLite database and SQLite broker: the build task reaches the worker the same way."""
    with httpx.Client(base_url=embedded_stack.url, timeout=60) as client:
        response = fetch_built(client, "/v1/models/resnet18/export", {"format": "torchscript"})
    assert response.content[:2] == b"PK"  # TorchScript files are zip archives
