"""The image page's "what the model looks at" toggle in a real browser: the worker's Grad-CAM overlay replaces
the picture while ticked (202 while it is computed), and a failed image offers no toggle."""

import pytest

from tests.system.browser.test_dashboard import SHOTS, _page, _paste_key, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e


def test_image_page_toggles_the_gradcam_overlay(browser, stack, api_key, client, finished_job):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    job_id = finished_job["job"]["id"]
    context, page, errors = _page(browser, "dark")
    page.goto(f"{stack.url}/")
    _paste_key(page, api_key)
    page.goto(f"{stack.url}/#/jobs/{job_id}/images/1")
    page.wait_for_selector("#gradcam-toggle", timeout=20_000)
    assert page.is_visible("#full-image") and not page.is_visible("#gradcam-image")
    page.check("#gradcam-toggle")
    page.wait_for_function("document.querySelector('#gradcam-image')?.naturalWidth > 0", timeout=180_000)
    assert page.evaluate("document.querySelector('#gradcam-image').naturalWidth") == 224  # the model's input crop
    assert not page.is_visible("#full-image")
    assert "Grad-CAM" in page.inner_text("#gradcam-note")
    # The page shows the same map the API serves.
    served = client.get(f"/v1/jobs/{job_id}/images/1/gradcam", params={"format": "overlay"})
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    page.screenshot(path=SHOTS / "image-gradcam-dark.png", full_page=True)
    page.uncheck("#gradcam-toggle")
    assert page.is_visible("#full-image") and not page.is_visible("#gradcam-image")
    page.goto(f"{stack.url}/#/jobs/{job_id}/images/9")  # the truncated JPEG
    page.wait_for_selector(".badge", timeout=20_000)
    assert page.locator("#gradcam-toggle").count() == 0
    assert not errors, errors
    context.close()
