"""The product team's pages fit the window (issue #15), in headless Chromium at 1,280 and 1,920 px.

For the change page (with a preview), the add page, a confirmation page, the dashboard, the
results pages and the export page of the demo's experiments:

- the page is exactly as wide as the window (no horizontal scroll bar);
- no visible element's box extends past the viewport's right edge;
- no element's content is wider (or, where overflow is not visible, taller) than its box:
  content hidden by ``overflow: hidden`` or scrolled away by ``overflow: auto`` counts as
  clipped. Form controls (their text scrolls inside them by design) and Django's
  ``visually-hidden`` screen-reader labels (1 px on purpose) are the only exceptions.

Screenshots go to artifacts/<page>-<width>.png. Needs /usr/bin/chromium (see test_results_page).
"""

from __future__ import annotations

import json
import os
from io import StringIO

import pytest

from tests.browser.conftest import ARTIFACTS, LAUNCH_ARGS

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1280, 1920)

# Every element whose box is left by its content, or whose box leaves the viewport.
OVERFLOWS = """() => {
  const viewport = document.documentElement.clientWidth;
  const problems = [];
  const skipped = ['INPUT', 'SELECT', 'OPTION', 'SCRIPT', 'STYLE'];
  const name = (el) => {
    const classes = typeof el.className === 'string' ? el.className.trim() : '';
    const dotted = classes ? '.' + classes.split(/\\s+/).join('.') : '';
    const label = el.tagName === 'text' ? `"${el.textContent}"` : '';
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + dotted + label;
  };
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('.visually-hidden') || skipped.includes(el.tagName)) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.right > viewport + 1) problems.push(`${name(el)} ends at ${Math.round(box.right)}`);
    const style = getComputedStyle(el);
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`${name(el)}: ${el.scrollWidth} px of content in ${el.clientWidth} px`
        + ` (overflow-x ${style.overflowX})`);
    }
    const tall = el.clientHeight > 0 && el.scrollHeight > el.clientHeight + 1;
    if (tall && style.overflowY !== 'visible' && !['HTML', 'BODY'].includes(el.tagName)) {
      problems.push(`${name(el)}: ${el.scrollHeight} px tall content in ${el.clientHeight} px`);
    }
  }
  return {page: document.documentElement.scrollWidth, viewport, problems};
}"""


@pytest.fixture
def demo_site(live_server, django_user_model):
    from django.core.management import call_command

    call_command("demo", "--units", "1400", stdout=StringIO())
    return live_server


def pages(experiments: dict[str, int]) -> dict[str, str]:
    ranker, recs, spell = (
        experiments[k] for k in ("search-ranker-v2", "recs-two-tower", "search-spellcheck")
    )
    base = "/admin/experiments/experiment"
    preview = "preview_unit_id=u-1&preview_attributes=%7B%22country%22%3A%22US%22%7D"
    return {
        "change-running": f"{base}/{recs}/change/?{preview}",
        "change-shipped": f"{base}/{ranker}/change/",
        "add": f"{base}/add/",
        "confirm-ship": f"{base}/{recs}/move/ship/?variant=two-tower-rerank",
        "dashboard": f"{base}/dashboard/",
        "results-recs": f"{base}/{recs}/results/",
        "results-srm": f"{base}/{spell}/results/",
        "export": f"{base}/{recs}/export/",
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_pages__demo_data__fit_the_window_without_clipping(demo_site, chromium_path, width):
    sync_api = pytest.importorskip("playwright.sync_api")
    from experiments.models import Experiment

    experiments = dict(Experiment.objects.values_list("key", "pk"))
    ARTIFACTS.mkdir(exist_ok=True)
    failures: dict[str, list[str]] = {}
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.set_default_timeout(20_000)
        # Given the demo's admin, logged in (the landing page asks for it)
        page.goto(f"{demo_site.url}/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "variantlab-demo")
        page.click("input[type=submit]")
        # The landing page is the dashboard, under Variantlab's own name
        assert page.url.endswith("/admin/experiments/experiment/dashboard/")
        assert page.inner_text("#site-name").startswith("Variantlab")
        for name, path in pages(experiments).items():
            # When each page is opened
            page.goto(f"{demo_site.url}{path}")
            page.wait_for_load_state("load")
            page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
            found = page.evaluate(OVERFLOWS)
            # Then it is as wide as the window and nothing sticks out or is cut off
            problems = list(found["problems"])
            if found["page"] != found["viewport"]:
                problems.insert(0, f"page {found['page']} px wide in {found['viewport']} px")
            if problems:
                failures[name] = problems[:10]
        # The change page's panels sit beside each other under the form, readable
        page.goto(f"{demo_site.url}{pages(experiments)['change-running']}")
        for panel in ("#vl-ship", "#vl-preview", "#vl-rollback"):
            assert page.locator(panel).bounding_box()["width"] >= 300, panel
        payload = json.loads(page.inner_text("#vl-preview-payload"))  # JSON, not a dict's repr
        assert isinstance(payload, dict) and "model" in payload
        browser.close()
    assert not failures, "\n".join(f"{k}: {v}" for k, v in failures.items())
