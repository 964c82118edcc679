"""A custom model's export and Grad-CAM through a real API and worker: the ONNX file, preprocessed as its own
metadata says, reproduces a job of that model; a class named by label explains an image of that job."""

import io
import json
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchvision
from PIL import Image
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from imagebatch.core.storage import BlobStore
from imagebatch.db import lifecycle
from imagebatch.worker.models import ResNetWithEmbedding
from imagebatch.worker.samples import write_sample_photos
from imagebatch.worker.training.images import Preprocessing
from imagebatch.worker.training.model import save_custom_model
from tests.harness.stack import wait_for_job
from tests.system.e2e.test_model_tools import MAX_DP, fetch_built

pytestmark = pytest.mark.e2e
NAME = "toolsnet"
CLASSES = ["zero", "one", "two"]
CROP = 96
JOBS: list[str] = []  # the job of the model that the first test submits


@pytest.fixture(scope="module")
def custom_model(pg_stack, pg_database, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A seeded 3-class ResNet-18 saved and uploaded as training does, then registered as NAME:1."""
    torch.manual_seed(7)
    resnet = torchvision.models.resnet18(weights=None)
    resnet.fc = nn.Linear(512, len(CLASSES))
    preprocessing = Preprocessing.for_model("resnet18", CROP).to_dict()
    meta = {"architecture": "resnet18", "classes": CLASSES, "preprocessing": preprocessing}
    folder = tmp_path_factory.mktemp("toolsnet")
    meta = save_custom_model(ResNetWithEmbedding(resnet), meta, folder)
    store = BlobStore(str(Path(pg_stack.env["IMAGEBATCH_DATA_DIR"]) / "blobs"))
    for file in ("model.pt", "model.json"):
        store.write_bytes(f"models/_/{NAME}/run/{file}", (folder / file).read_bytes())
    model = lifecycle.NewModel(
        name=NAME,
        base_model="resnet18",
        mode="scratch",
        classes=CLASSES,
        metrics={},
        weights_sha256=meta["weights_sha256"],
        weights_key=f"models/_/{NAME}/run/model.pt",
        meta={},
    )
    engine = create_engine(pg_database)
    try:
        with Session(engine) as session, session.begin():
            lifecycle.register_model(session=session, tenant=None, model=model)
    finally:
        engine.dispose()
    return meta["weights_sha256"]


def test_custom_model_export_and_gradcam(pg_client: httpx.Client, custom_model: str, tmp_path: Path) -> None:
    photos = write_sample_photos(tmp_path / "photos", 3)
    response = fetch_built(pg_client, f"/v1/models/{NAME}/export", {"format": "onnx"})
    assert f'filename="{NAME}-1.onnx"' in response.headers["content-disposition"]
    path = tmp_path / "custom.onnx"
    path.write_bytes(response.content)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert (props["imagebatch.weights_sha256"], json.loads(props["imagebatch.classes"])) == (custom_model, CLASSES)
    card = json.loads(props["imagebatch.transforms"])
    # Preprocess as the file's own metadata says, with torchvision's v2 transforms.
    transform = T.Compose(
        [
            T.Resize(card["resize"], interpolation=InterpolationMode(card["interpolation"]), antialias=True),
            T.CenterCrop(card["crop"]),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(card["mean"], card["std"]),
        ]
    )
    inputs = torch.stack([transform(Image.open(p).convert("RGB")) for p in photos]).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, _ = session.run(None, {"input": inputs})

    files = [("files", (p.name, p.read_bytes())) for p in photos]
    options = {"model": NAME, "precision": "fp32", "decode": "exact", "store_probabilities": "true"}
    submitted = pg_client.post("/v1/jobs", files=files, data=options)
    assert submitted.status_code == 202, submitted.text
    job = wait_for_job(pg_client, submitted.json()["id"], timeout=600)
    JOBS.append(job["id"])
    assert job["counts"]["succeeded"] == len(photos), job
    items = pg_client.get(f"/v1/jobs/{job['id']}/results", params={"include": "probabilities"}).json()["items"]
    stored = np.stack([np.asarray(i["probabilities"]) for i in sorted(items, key=lambda i: i["index"])])
    probabilities = torch.from_numpy(logits).double().softmax(-1).numpy()
    assert (probabilities.argmax(-1) == stored.argmax(-1)).all()
    worst = float(np.abs(probabilities - stored).max())
    print(f"custom ONNX round trip: max |dp| {worst:.2e}")
    assert worst <= MAX_DP

    cam = fetch_built(pg_client, f"/v1/jobs/{job['id']}/images/0/gradcam", {"class": "two", "format": "overlay"})
    assert cam.headers["X-Class-Index"] == "2" and cam.headers["X-Class-Label"] == "two"
    assert Image.open(io.BytesIO(cam.content)).size == (CROP, CROP)
    unknown = pg_client.get(f"/v1/jobs/{job['id']}/images/0/gradcam", params={"class": "three"})
    assert unknown.status_code == 422 and "three" in unknown.json()["detail"]


def test_deleting_the_model_deletes_its_exports(pg_stack, pg_client: httpx.Client, custom_model: str) -> None:
    """Exports lie beside the weights: deleting the version deletes them; its jobs can no longer be explained."""
    exports = Path(pg_stack.env["IMAGEBATCH_DATA_DIR"]) / "blobs" / "models" / "_" / NAME / "run" / "exports"
    assert list(exports.rglob("*.onnx")), "the export of the test above is stored beside the weights"
    (job_id,) = JOBS
    assert pg_client.delete(f"/v1/models/{NAME}:1").status_code == 204
    assert not exports.exists()
    assert pg_client.get(f"/v1/models/{NAME}/export").status_code == 404
    gone = pg_client.get(f"/v1/jobs/{job_id}/images/0/gradcam", params={"class": "one"})
    assert gone.status_code == 409 and "deleted" in gone.json()["detail"]
