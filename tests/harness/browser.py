"""Headless Chromium for the dashboard tests: launch it, open a themed page that records script errors, paste a key."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def launch_browser() -> Iterator:
    """Debian's Chromium driven by Playwright; the test is skipped where either is missing."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (scripts/test.sh installs it with `apt-get install -y chromium`)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
    executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def new_page(browser, scheme: str):
    """A fresh context in the given colour scheme; the list collects uncaught script errors."""
    context = browser.new_context(viewport={"width": 1366, "height": 860}, color_scheme=scheme, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, errors


def paste_key(page, key: str) -> None:
    page.click("#key-status")
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")
    assert page.evaluate("localStorage.getItem('imagebatch.apiKey')") == key


def screenshot(page, path: Path) -> None:
    """The whole page from its top (a sticky bar scrolled down lands mid-picture), without a passing toast."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0); document.getElementById('toast').hidden = true")
    page.screenshot(path=path, full_page=True)
