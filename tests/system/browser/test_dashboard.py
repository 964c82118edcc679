"""The dashboard in a real browser: headless Debian Chromium driven by Playwright against the real stack."""

import csv
import io
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.harness.browser import launch_browser
from tests.harness.browser import new_page as _page
from tests.harness.browser import paste_key as _paste_key
from tests.harness.images import photo, write_broken, write_photos
from tests.harness.stack import wait_for_job

SHOTS = REPO / "artifacts" / "screenshots"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser()


def test_submit_watch_inspect_and_export_in_the_browser(browser, stack, api_key, client, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    photos = write_photos(tmp_path / "photos", 10)
    broken = write_broken(tmp_path / "broken")["truncated"]
    context, page, errors = _page(browser, "dark")
    page.goto(f"{stack.url}/#/submit")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    _paste_key(page, api_key)

    page.set_input_files("#dropzone input[type=file]", [str(p) for p in photos] + [str(broken)])
    assert "11 file(s)" in page.inner_text("#file-summary")
    page.select_option("#opt-model", "resnet18")
    page.select_option("#opt-precision", "fp32")  # decode left at its default: exact for fp32
    assert page.input_value("#opt-decode") == ""
    page.screenshot(path=SHOTS / "submit-dark.png", full_page=True)
    page.click("#submit-btn")
    page.wait_for_url("**/#/jobs/*", timeout=60_000)
    job_id = page.url.rsplit("/", 1)[-1]
    page.wait_for_selector(".grid-2 .card", timeout=20_000)
    page.screenshot(path=SHOTS / "job-progress-dark.png", full_page=True)

    # The page itself must reach "completed" and show the final counts the API reports.
    page.wait_for_selector(".badge[data-state=completed]", timeout=180_000)
    page.wait_for_function("document.querySelector('#stat-done')?.textContent === '11 / 11'", timeout=10_000)
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "completed" and job["counts"]["succeeded"] == 10 and job["counts"]["failed"] == 1
    assert (job["precision"], job["decode"], job["reproducibility"]["decode"]) == ("fp32", "exact", "exact")
    assert page.inner_text("#job-options").endswith("precision fp32 · decode exact")
    page.wait_for_selector("#thumbs .thumb img[src]", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('#thumbs .thumb').length === 11", timeout=30_000)
    assert page.locator("#thumbs .thumb.err").count() == 1
    page.screenshot(path=SHOTS / "job-completed-dark.png", full_page=True)

    with page.expect_download() as download:
        page.click("#export-csv")
    exported = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == f"{job_id}.csv"
    assert exported == client.get(f"/v1/jobs/{job_id}/results.csv").content
    rows = list(csv.DictReader(io.StringIO(exported.decode())))
    assert sorted(r["source"] for r in rows) == sorted([p.name for p in photos] + [broken.name])

    with page.expect_download() as parquet_download:
        page.click("#export-parquet")
    table = pd.read_parquet(parquet_download.value.path())
    assert list(table["source"]) == [r["source"] for r in rows]
    ok = table[table["status"] == "ok"]
    assert list(ok["confidence"]) == [float(r["confidence"]) for r in rows if r["status"] == "ok"]
    assert [entries[0]["probability"] for entries in ok["top_k"]] == [
        float(r["top1_probability"]) for r in rows if r["status"] == "ok"
    ]
    assert {len(e) for e in ok["embedding"]} == {512} and table["embedding"].isna().sum() == 1

    # Filtering the grid by a label asks the API and shows exactly that label's images.
    label = rows[0]["top1_label"]
    page.fill("#f-label", label)
    page.dispatch_event("#f-label", "change")
    wanted = sum(r["top1_label"] == label for r in rows)
    page.wait_for_function(f"document.querySelectorAll('#thumbs .thumb').length === {wanted}", timeout=10_000)
    assert set(page.locator("#thumbs .thumb .label").all_text_contents()) == {label}
    page.fill("#f-label", "")
    page.dispatch_event("#f-label", "change")
    page.wait_for_function("document.querySelectorAll('#thumbs .thumb').length === 11", timeout=10_000)

    # Image page: top-5 bars from the stored result, the embedding histogram, neighbours.
    page.click("#thumbs .thumb[data-index='2']")
    page.wait_for_selector("#topk svg rect.bar", timeout=20_000)
    page.wait_for_selector("#similar .thumb", timeout=20_000)
    page.wait_for_function("document.querySelector('#full-image')?.naturalWidth > 0", timeout=20_000)
    item = client.get(f"/v1/jobs/{job_id}/images/2").json()
    labels = page.locator("#topk svg text:not(.value)").all_text_contents()
    values = page.locator("#topk svg text.value").all_text_contents()
    assert labels == [t["label"] if len(t["label"]) <= 26 else t["label"][:25] + "…" for t in item["top_k"]]
    assert values == [f"{100 * t['probability']:.1f}%" for t in item["top_k"]]
    page.screenshot(path=SHOTS / "image-dark.png", full_page=True)
    assert not errors, errors
    context.close()


def test_a_tiff_image_page_shows_a_picture(browser, stack, api_key, client, tmp_path):
    """Browsers cannot show TIFF: the image page shows the worker's preview, not a broken image."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    tiff = tmp_path / "scan.tif"
    photo(640, 480, seed=11).save(tiff)
    response = client.post("/v1/jobs", files=[("files", (tiff.name, tiff.read_bytes()))])
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"], timeout=180)
    assert job["counts"]["succeeded"] == 1, job
    context, page, errors = _page(browser, "dark")
    page.goto(f"{stack.url}/")
    _paste_key(page, api_key)
    page.goto(f"{stack.url}/#/jobs/{job['id']}/images/0")
    page.wait_for_selector("#full-image", timeout=20_000)
    page.wait_for_function("document.querySelector('#full-image')?.naturalWidth > 0", timeout=20_000)
    assert page.evaluate("document.querySelector('#full-image').naturalWidth") == 640
    page.screenshot(path=SHOTS / "image-tiff-dark.png", full_page=True)
    # The job page's grid shows the worker's thumbnail of it.
    page.goto(f"{stack.url}/#/jobs/{job['id']}")
    page.wait_for_function("document.querySelector('#thumbs .thumb img')?.naturalWidth > 0", timeout=20_000)
    assert not errors, errors
    context.close()


def test_light_theme_and_jobs_list(browser, stack, api_key, finished_job):
    context, page, errors = _page(browser, "light")
    page.goto(f"{stack.url}/")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    page.wait_for_selector("#jobs-table")
    # Without a key the API answers 401 and the page says what to do.
    page.wait_for_selector("#toast:not([hidden])", timeout=10_000)
    assert "API key" in page.inner_text("#toast")
    _paste_key(page, api_key)
    page.wait_for_selector(f"tr[data-job='{finished_job['job']['id']}'] .badge[data-state=completed]", timeout=10_000)
    page.screenshot(path=SHOTS / "jobs-light.png", full_page=True)
    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("localStorage.getItem('imagebatch.theme')") == "dark"
    page.screenshot(path=SHOTS / "jobs-dark.png", full_page=True)
    assert not errors, errors
    context.close()


def test_static_files_are_public_but_data_is_not(stack):
    assert httpx.get(f"{stack.url}/").status_code == 200
    assert httpx.get(f"{stack.url}/static/app.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{stack.url}/v1/jobs").status_code == 401
