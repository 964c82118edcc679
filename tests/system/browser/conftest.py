"""One headless Chromium per browser test module."""

import pytest

from tests.harness.browser import launch_browser


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser()
