"""report.html in a real browser: Debian's headless Chromium, driven by Playwright.

`make test` installs Chromium when it is missing (see the Makefile's `browser` target).
The screenshot is kept in tests/artifacts/ for a person to look at after the run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import invoke

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
CHARTS = ("issuance", "exceptions", "redemptions")
# Flags that keep Chromium from reaching out on a closed network (updates, sync, metrics).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("browser")
    run = base / "run"
    result = invoke([
        "run", "--input", str(REPO / "sample_data"), "--campaigns", str(REPO / "sample_data" / "campaigns.toml"),
        "--out", str(run), "--state", str(base / "state"), "--as-of", "2026-11-22T09:00:00+11:00",
    ])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def page_in_chromium(sample_run, tmp_path_factory):
    """report.html opened from disk in headless Chromium; yields (page, requested URLs)."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium is not installed: run `make test`, which installs Debian's chromium"
    from playwright.sync_api import sync_playwright

    url = (sample_run / "report.html").resolve().as_uri()
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})

        def record(route):
            requested.append(route.request.url)
            if route.request.url == url:
                route.continue_()
            else:  # anything else would be a network request (or a file the report relies on)
                route.abort()

        context.route("**/*", record)
        page = context.new_page()
        page.on("request", lambda request: requested.append(request.url) if request.url not in requested else None)
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        yield page, requested, url
        browser.close()


def test_report_opens_without_any_network_request(page_in_chromium):
    page, requested, url = page_in_chromium

    assert set(requested) == {url}
    assert page.title().startswith("omneo-bulk report")


def test_every_chart_renders_with_visible_bars(page_in_chromium):
    page, _, _ = page_in_chromium

    for name in CHARTS:
        chart = page.locator(f"svg.chart[data-chart='{name}']")
        assert chart.count() == 1, f"no {name} chart"
        box = chart.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, f"{name} chart has no size: {box}"
        bars = chart.locator("rect.bar")
        sizes = [bars.nth(i).bounding_box() for i in range(bars.count())]
        visible = [b for b in sizes if b and b["width"] > 0 and b["height"] > 0]
        assert visible, f"{name} chart drew no visible bar"


def test_headlines_and_tables_show_the_runs_figures(page_in_chromium, sample_run):
    page, _, _ = page_in_chromium
    from pipeline import db, warehouse

    con = warehouse.connect(sample_run)
    try:
        exceptions = db.scalar(con, "SELECT count(*) FROM exceptions")
        reject_groups = db.scalar(con, 'SELECT count(*) FROM (SELECT DISTINCT dataset, reason, "column" FROM rejects)')
    finally:
        con.close()

    cards = dict(zip(page.locator(".card .name").all_inner_texts(), page.locator(".card .value").all_inner_texts()))
    assert cards["exceptions"] == f"{exceptions:,}"
    assert page.locator("#top-exceptions tbody tr").count() == min(exceptions, 25)
    assert page.locator("#rejects tbody tr").count() == reject_groups


def test_screenshot_is_kept_as_an_artefact(page_in_chromium):
    page, _, _ = page_in_chromium
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / "report.png"

    page.screenshot(path=str(target), full_page=True)

    assert target.stat().st_size > 20_000  # a blank page is a few KB
