"""The Train, training-job, Models and model pages in a real browser against the real stack: a tiny model
trained from the page, its curves, its confusion heatmap against the API's JSON, classifying with it, deleting it."""

import io
import math
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO
from tests.harness.browser import new_page, paste_key, screenshot
from tests.harness.stack import wait_for_job

SHOTS = REPO / "artifacts" / "screenshots"
FINAL = ("completed", "failed", "cancelled")
COLOURS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 200)}

pytestmark = pytest.mark.e2e


def swatch(colour: tuple[int, int, int], seed: int) -> Image.Image:
    """A 40 px patch of one colour with noise: three such classes are learnt in an epoch or two."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(colour, dtype=np.int16) + rng.integers(-30, 31, size=(40, 40, 3), dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def swatch_archive(path: Path, per_class: int, seed: int, extra: dict[str, bytes] | None = None) -> Path:
    """An ImageFolder zip: <colour>/<n>.png, plus any `extra` members."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
        for k, (name, colour) in enumerate(COLOURS.items()):
            for i in range(per_class):
                data = io.BytesIO()
                swatch(colour, seed + 100 * k + i).save(data, format="PNG")
                archive.writestr(f"{name}/{i:02d}.png", data.getvalue())
    return path


def heatmap_cells(page, scope: str) -> list[list[int]]:
    """The counts the heatmap under `scope` draws, as rows of the matrix."""
    cells = page.eval_on_selector_all(
        f"{scope} svg.heat rect.cell", "els => els.map(e => [+e.dataset.row, +e.dataset.col, +e.dataset.count])"
    )
    size = max(r for r, _, _ in cells) + 1
    rows = [[0] * size for _ in range(size)]
    for r, c, count in cells:
        rows[r][c] = count
    return rows


def wait_training(client, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while (job := client.get(f"/v1/training-jobs/{job_id}").json())["state"] not in FINAL:
        assert time.monotonic() < deadline, f"training job {job_id} still {job['state']} after {timeout}s"
        time.sleep(0.5)
    return job


def train_from_the_page(page, url: str, archive: Path, name: str) -> str:
    page.goto(f"{url}/#/train")
    page.wait_for_selector("#train-form")
    page.set_input_files("#train-archive", str(archive))
    page.fill("#train-name", name)
    page.select_option("#train-mode", "scratch")
    page.fill("#train-epochs", "2")
    page.click("#train-advanced summary")
    page.fill("#train-image_size", "32")
    page.fill("#train-batch_size", "8")
    page.uncheck("#train-augment")
    # A name the API refuses: its 422 is shown and the form stays as filled in.
    page.fill("#train-name", "resnet18")
    page.click("#train-btn")
    page.wait_for_function("document.getElementById('toast').textContent.startsWith('422: name: ')")
    assert "built-in model" in page.inner_text("#toast")
    assert page.input_value("#train-image_size") == "32" and page.is_enabled("#train-btn")
    page.fill("#train-name", name)
    screenshot(page, SHOTS / "train-dark.png")
    page.click("#train-btn")
    page.wait_for_url("**/#/training/*", timeout=60_000)
    return page.url.rsplit("/", 1)[-1]


def test_train_watch_evaluate_and_classify_from_the_pages(browser, stack, api_key, client, tmp_path):
    broken = {"red/broken.png": b"\x89PNG\r\n\x1a\n not really", "notes/readme.txt": b"not an image"}
    train_zip = swatch_archive(tmp_path / "swatches.zip", per_class=8, seed=0, extra=broken)
    holdout_zip = swatch_archive(tmp_path / "holdout.zip", per_class=4, seed=5000)
    context, page, errors = new_page(browser, "dark")
    page.goto(f"{stack.url}/")
    paste_key(page, api_key)
    job_id = train_from_the_page(page, stack.url, train_zip, "swatches")

    # The curves grow while the page polls; at the end they and the epochs table show the API's epochs.
    page.wait_for_selector("#loss-card svg circle.dot", timeout=180_000)
    page.wait_for_selector(".badge[data-state=completed]", timeout=180_000)
    job = client.get(f"/v1/training-jobs/{job_id}").json()
    assert job["state"] == "completed" and len(job["epochs"]) == 2 and job["options"]["image_size"] == 32
    assert job["options"]["augment"] is False and job["mode"] == "scratch"
    for card in ("#loss-card", "#accuracy-card"):
        assert page.locator(f"{card} svg circle.dot").count() == 4  # train and validation, two epochs
    cells = [row.locator("td").all_text_contents() for row in page.locator("#epochs-table tbody tr").all()]
    assert [[c[0].rstrip(" ★"), c[1], c[4]] for c in cells] == [
        [str(e["epoch"]), f"{e['train_loss']:.4f}", f"{100 * e['val_accuracy']:.1f}%"] for e in job["epochs"]
    ]
    counts = page.locator("#class-counts tbody tr td:nth-child(4)").all_text_contents()
    assert counts == ["8", "8", "8"]  # blue, green, red: the API's classes, in order; the broken PNG skipped
    skipped = [row.locator("td").all_text_contents() for row in page.locator("#skipped-images tbody tr").all()]
    report = job["dataset"]
    assert [s[:3] for s in skipped] == [[s["rel"], s["label"], s["category"]] for s in report["skipped"]] + [
        [s["source"], "", "not an image"] for s in report["upload_skipped"]
    ]
    assert skipped[0][:2] == ["red/broken.png", "red"] and len(skipped) == 2
    assert page.inner_text("#dataset-warnings").count("⚠") == len(report["warnings"]) >= 1
    screenshot(page, SHOTS / "training-dark.png")

    # The model page: curves of its training job, the validation split's confusion matrix as the API has it.
    page.click("#model-link")
    page.wait_for_selector("#model-scores svg.heat")
    model = client.get("/v1/models/swatches:1").json()
    assert heatmap_cells(page, "#model-scores") == model["evaluation"]["confusion_matrix"]["rows"]
    assert page.locator("#loss-card svg circle.dot").count() == 4

    # Export: a worker builds the TorchScript file (202 meanwhile); the page saves the API's file under its name.
    with page.expect_download(timeout=180_000) as exported:
        page.click("#export-torchscript")
    served = client.get("/v1/models/swatches:1/export", params={"format": "torchscript"})
    assert served.status_code == 200 and exported.value.suggested_filename == "swatches-1.pt"
    assert Path(exported.value.path()).read_bytes() == served.content

    # Evaluate on a held-out archive from the page; its heatmap and table are the evaluation's JSON.
    page.set_input_files("#eval-archive", str(holdout_zip))
    page.click("#eval-btn")
    page.wait_for_selector("#eval-result svg.heat", timeout=180_000)
    evaluation_id = page.get_attribute("#eval-result a[href^='#/jobs/']", "href").rsplit("/", 1)[-1]
    metrics = client.get(f"/v1/evaluations/{evaluation_id}").json()["metrics"]
    assert metrics["count"] == 12 and metrics["confusion_matrix"]["classes"] == ["blue", "green", "red"]
    assert heatmap_cells(page, "#eval-result") == metrics["confusion_matrix"]["rows"]
    support = page.locator("#eval-result table.per-class tbody td:nth-child(5)").all_text_contents()
    assert support == [str(row["support"]) for row in metrics["per_class"]] == ["4", "4", "4"]
    screenshot(page, SHOTS / "model-dark.png")

    # Classify with it from the submit form: the custom model is in the list, its classes in the grid.
    page.click("#classify-with")
    page.wait_for_selector("#opt-model:not([disabled])")
    assert page.input_value("#opt-model") == "swatches:1"
    assert {"resnet18", "resnet50", "swatches", "swatches:1"} <= set(
        page.eval_on_selector_all("#opt-model option", "els => els.map(e => e.value)")
    )
    photos = [tmp_path / f"{name}.png" for name in COLOURS]
    for path, colour in zip(photos, COLOURS.values(), strict=True):
        swatch(colour, seed=9000).save(path)
    page.set_input_files("#dropzone input[type=file]", [str(p) for p in photos])
    screenshot(page, SHOTS / "submit-custom-model-dark.png")
    page.click("#submit-btn")
    page.wait_for_url("**/#/jobs/*", timeout=60_000)
    classified = wait_for_job(client, page.url.rsplit("/", 1)[-1], timeout=180)
    assert (classified["state"], classified["model"], classified["model_version"]) == ("completed", "swatches", 1)
    page.wait_for_selector(".badge[data-state=completed]", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('#thumbs .thumb:not(.wait) .label').length === 3", timeout=30_000)
    shown = page.locator("#thumbs .thumb .label").all_text_contents()
    items = client.get(f"/v1/jobs/{classified['id']}/results").json()["items"]
    assert shown == [item["top1_label"] for item in items] and set(shown) <= set(COLOURS)
    assert page.locator("#f-correct").is_hidden()  # a classification has no true labels

    # The evaluation's own job page: true labels under the predictions, the misclassified ones on request.
    page.goto(f"{stack.url}/#/jobs/{evaluation_id}")
    page.wait_for_selector("#f-correct", state="visible")
    page.wait_for_function("document.querySelectorAll('#thumbs .thumb .truth').length === 12", timeout=30_000)
    page.select_option("#f-correct", "false")
    entropy = client.get(f"/v1/jobs/{evaluation_id}/summary").json()["entropy"]
    assert entropy["edges"][-1] == pytest.approx(math.log(3))  # the histogram spans the model's 3 classes
    rows = metrics["confusion_matrix"]["rows"]
    wrong = sum(rows[i][j] for i in range(3) for j in range(3) if i != j)
    page.wait_for_function(f"document.querySelectorAll('#thumbs .thumb').length === {wrong}", timeout=10_000)
    assert page.locator("#thumbs .thumb.miss").count() == wrong
    screenshot(page, SHOTS / "evaluation-job-dark.png")
    assert not errors, errors
    context.close()

    # The same pages in the light theme.
    context, page, errors = new_page(browser, "light")
    page.goto(f"{stack.url}/")
    paste_key(page, api_key)
    for route, ready, shot in (
        ("#/train", f"#training-table tr[data-job='{job_id}']", "train-light.png"),
        ("#/models", "#models-table tr[data-model='swatches:1']", "models-light.png"),
        (f"#/training/{job_id}", "#loss-card svg circle.dot", "training-light.png"),
        ("#/models/resnet18", "#evaluate", "model-builtin-light.png"),
        ("#/models/swatches", "#model-scores svg.heat", "model-light.png"),
    ):
        page.goto(f"{stack.url}/{route}")
        page.wait_for_selector(ready)
        screenshot(page, SHOTS / shot)
    assert page.input_value("#scores-source") == "0"  # the latest evaluation comes first
    assert heatmap_cells(page, "#model-scores") == metrics["confusion_matrix"]["rows"]
    assert not errors, errors
    context.close()


class _HeldImage(BaseHTTPRequestHandler):
    """Serves a PNG only once `release` is set: a job fetching it stays running until then."""

    release = threading.Event()
    body = b""

    def do_GET(self) -> None:
        self.release.wait(15)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


def test_deleting_a_model_in_use_shows_the_apis_409_then_succeeds(browser, stack, api_key, client, tmp_path):
    archive = swatch_archive(tmp_path / "doomed.zip", per_class=5, seed=77)
    options = {"name": "doomed", "mode": "scratch", "epochs": "1", "image_size": "16", "augment": "false"}
    for _ in range(2):  # doomed:1 and doomed:2
        response = client.post("/v1/training-jobs", files={"archive": ("d.zip", archive.read_bytes())}, data=options)
        assert response.status_code == 202, response.text
        assert wait_training(client, response.json()["id"])["state"] == "completed", stack.all_logs()
    data = io.BytesIO()
    swatch(COLOURS["red"], seed=1).save(data, format="PNG")
    _HeldImage.body, _HeldImage.release = data.getvalue(), threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HeldImage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/held.png"
        job = client.post("/v1/jobs", json={"uris": [url], "model": "doomed"}).json()  # the latest: doomed:2
        context, page, errors = new_page(browser, "dark")
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{stack.url}/")
        paste_key(page, api_key)
        page.goto(f"{stack.url}/#/models/doomed")
        page.wait_for_selector("#versions-table tr[data-ref='doomed:1']")
        page.click("#delete-version")
        page.wait_for_selector("#model-problem:not([hidden])")
        assert "409: doomed:2 is used by a queued or running job" in page.inner_text("#model-problem")
        screenshot(page, SHOTS / "model-in-use-dark.png")
        assert client.get("/v1/models/doomed:2").status_code == 200
        _HeldImage.release.set()
        assert wait_for_job(client, job["id"], timeout=120)["state"] == "completed"
        # Deleting the latest version from #/models/doomed shows the version that is latest now.
        page.click("#delete-version")
        page.wait_for_function("document.querySelector('h1')?.textContent.startsWith('doomed v1')")
        assert page.locator("#versions-table tbody tr").count() == 1
        page.click("#delete-version")
        page.wait_for_url("**/#/models", timeout=10_000)
        assert client.get("/v1/models/doomed").status_code == 404
        assert not errors, errors
        context.close()
    finally:
        _HeldImage.release.set()
        server.shutdown()


def test_the_training_page_follows_a_run_live_and_cancels_it(browser, stack, api_key, client, tmp_path):
    archive = swatch_archive(tmp_path / "long.zip", per_class=5, seed=300)
    options = {"name": "long", "mode": "scratch", "epochs": "200", "image_size": "16", "augment": "false"}
    response = client.post("/v1/training-jobs", files={"archive": ("long.zip", archive.read_bytes())}, data=options)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    context, page, errors = new_page(browser, "dark")
    page.goto(f"{stack.url}/")
    paste_key(page, api_key)
    page.goto(f"{stack.url}/#/training/{job_id}")
    # Epochs arrive without a reload: the page polls, and the curves gain points as they end.
    page.wait_for_selector("#loss-card svg circle.dot", timeout=120_000)
    first = page.locator("#loss-card svg circle.dot").count()
    page.wait_for_function(f"document.querySelectorAll('#loss-card svg circle.dot').length > {first}", timeout=60_000)
    screenshot(page, SHOTS / "training-running-dark.png")
    page.click("#cancel-training")
    page.wait_for_selector(".badge[data-state=cancelled]", timeout=60_000)
    job = client.get(f"/v1/training-jobs/{job_id}").json()
    assert job["state"] == "cancelled" and job["model"] is None and len(job["epochs"]) < 200
    assert page.locator("#model-link").count() == 0 and page.locator("#cancel-training").count() == 0
    assert page.inner_text("#stat-epochs") == f"{len(job['epochs'])} / 200"
    assert not errors, errors
    context.close()


def test_a_training_that_fails_shows_why(browser, stack, api_key, client, tmp_path):
    """Every image of one class is unreadable: the data step fails the job naming the class; the page says so."""
    archive = swatch_archive(tmp_path / "hollow.zip", per_class=3, seed=900)
    with zipfile.ZipFile(archive, "a") as members:
        members.writestr("grey/0.png", b"\x89PNG\r\n\x1a\n not really")
    options = {"name": "hollow", "mode": "scratch", "epochs": "1", "image_size": "16"}
    response = client.post("/v1/training-jobs", files={"archive": ("hollow.zip", archive.read_bytes())}, data=options)
    assert response.status_code == 202, response.text
    job = wait_training(client, response.json()["id"])
    assert job["state"] == "failed" and "grey" in job["error"], job
    context, page, errors = new_page(browser, "light")
    page.goto(f"{stack.url}/")
    paste_key(page, api_key)
    page.goto(f"{stack.url}/#/training/{job['id']}")
    page.wait_for_selector(".badge[data-state=failed]")
    assert page.inner_text("#training-error") == job["error"]
    assert page.locator("#cancel-training").count() == 0 and page.locator("#model-link").count() == 0
    assert page.locator("#loss-card").count() == 0 and page.locator("#epochs-table").count() == 0
    screenshot(page, SHOTS / "training-failed-light.png")
    page.goto(f"{stack.url}/#/training/{'0' * 32}")
    page.wait_for_selector("#view .empty:has-text('404: Training job not found')")
    assert not errors, errors
    context.close()
