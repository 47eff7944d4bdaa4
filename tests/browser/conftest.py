"""Browser tests drive the Debian Chromium binary with Playwright; they never download one.

Without /usr/bin/chromium they are skipped, or fail when VARIANTLAB_REQUIRE_SERVICES=1 (CI must
not hide a broken setup). Screenshots land in artifacts/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium_path() -> str:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("VARIANTLAB_REQUIRE_SERVICES") == "1":
            pytest.fail(f"VARIANTLAB_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture
def browser_page(chromium_path: str):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        yield page
        browser.close()
