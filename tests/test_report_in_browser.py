"""The HTML report in a real browser (Debian's headless Chromium driven by Playwright).

Nothing may run off the page at 1280 px or on a 390 px phone, the charts must have labelled axes and
their target line, and an empty database must say "No data yet". Screenshots are kept in
test-artifacts/ (git-ignored). Skipped, with the reason, where no browser is installed; required
with COACHLOOP_REQUIRE_BROWSER=1 (as .ci/run sets).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import report
from bot.charts import WEEK_AXIS
from bot.measures_data import parse_period
from storage.db import Database
from tests.conftest import HISTORY_END, History, Stack

CHROMIUM = os.environ.get("COACHLOOP_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("COACHLOOP_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))
WIDTHS = (1280, 390)


def _missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh Chromium with an empty profile; no browser is downloaded."""
    problem = _missing()
    if problem is not None:
        if os.environ.get("COACHLOOP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"a browser is required but missing: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            yield context
        finally:
            context.close()


def _page_of(db_url: str, out: Path) -> Path:
    db = Database(db_url)
    try:
        with db.unit_of_work() as s:
            text, _ = report.render(s, parse_period("last-4-weeks", HISTORY_END), HISTORY_END, "html")
    finally:
        db.dispose()
    out.write_text(text, encoding="utf-8")
    return out


# Elements whose right edge passes the viewport (hidden ones and the screen-reader-only headers aside).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (getComputedStyle(el).clip === 'rect(0px, 0px, 0px, 0px)') continue;
    if (el.closest('thead') && getComputedStyle(el.closest('thead')).position === 'absolute') continue;
    if (r.right > width + 0.5 || r.left < -0.5) out.push(el.tagName + '.' + el.className);
  }
  return {scroll: document.documentElement.scrollWidth, width, out: out.slice(0, 10)};
}"""

CHART_TEXT = """(id) => {
  const svg = document.querySelector('#' + id + ' svg');
  if (!svg) return null;
  const texts = [...svg.querySelectorAll('text')].map(t => t.textContent.trim()).filter(Boolean);
  const title = document.getElementById(svg.getAttribute('aria-labelledby').split(' ')[0]);
  const box = svg.getBoundingClientRect();
  return {texts, role: svg.getAttribute('role'), title: title && title.textContent, width: box.width};
}"""


def _check_fits(page: Any, name: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        found = page.evaluate(OVERFLOW)
        assert found["scroll"] <= width and not found["out"], (width, found)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)


def test_the_eight_week_report_fits_and_its_charts_are_labelled(
    browser: Any, demo_history: History, tmp_path: Path
) -> None:
    page = browser.new_page()
    page.goto(_page_of(demo_history.db_url, tmp_path / "report.html").as_uri())
    _check_fits(page, "report-8-weeks")
    # Headline: one row per team, with row and column headers for screen readers.
    teams = page.locator("table.headline tbody th[scope=row]").all_inner_texts()
    assert teams == ["Billing", "Collections", "Retentions"]
    assert page.locator("table.headline thead th[scope=col]").count() == 5
    hit_rate = page.locator("table.headline tbody tr").first.locator("td").first.inner_text()
    assert "%" in hit_rate and "decided" in hit_rate
    for chart, y_label, reference in (
        ("chart-hit_rate", "Coached in the window (%)", "Target 90%"),
        ("chart-behaviour_change", "Pass rate after − before (pts)", "No change"),
    ):
        found = page.evaluate(CHART_TEXT, chart)
        assert found is not None, f"{chart} was not drawn"
        texts = found["texts"]
        assert WEEK_AXIS in texts and y_label in texts and reference in texts, texts
        assert {"Billing", "Collections", "Retentions"} <= set(texts)  # the legend
        assert "28" in texts and "16" in texts and "Sep" in texts and "Nov" in texts  # week labels
        assert found["role"] == "img" and found["title"] and found["width"] > 300
    # The definitions are in the page, in words.
    assert page.locator("#h-defs + dl dt").count() >= 10
    assert "bot/measures.py" not in page.content()
    page.close()


def test_an_empty_report_says_no_data_yet(browser: Any, stack: Stack, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(_page_of(stack.db.url, tmp_path / "empty.html").as_uri())  # teams, no scores yet
    _check_fits(page, "report-empty")
    assert page.locator("svg").count() == 0
    empty = page.locator("figure[data-chart=empty] .nodata")
    assert empty.count() == 2 and all("No data yet" in t for t in empty.all_inner_texts())
    page.close()
