"""table.html in a real browser (headless Chromium at 1366x768, driven by selenium), checked
the way a person looks at it: every row there, every picture decoded, the ranking chart on
top, click-to-sort both ways with missing values last, the seed toggle, enlarged pictures,
no console errors, and no horizontal scrolling. Screenshots go to ``artifacts/browser/``.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``browser-test`` extra; without
them the test is skipped with the install command, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from gansweep.report import aggregate
from tests.helpers import REPO
from tests.helpers import sweep as run_sweep

CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's; selenium's own download cannot work offline
INSTALL = ("apt-get update && apt-get install -y chromium chromium-driver && "
           "pip install -e '.[browser-test]'")
ARTIFACTS = REPO / "artifacts" / "browser"
WIDTH, HEIGHT = 1366, 768


def _missing() -> list[str]:
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if not Path(CHROMEDRIVER).exists():
        missing.append(CHROMEDRIVER)
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        missing.append("chromium")
    return missing


@pytest.fixture
def browser():
    missing = _missing()
    if missing:
        message = f"browser test needs {', '.join(missing)}; install: {INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {message}")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars=false"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(WIDTH, HEIGHT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _open(driver, page: Path):
    driver.get(page.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"


def _check_images(driver) -> int:
    """Every picture with a source is decoded; returns how many there are."""
    images = driver.execute_script(
        "return [...document.images].filter(i => i.getAttribute('src'))"
        ".map(i => [i.alt, i.complete, i.naturalWidth])")
    broken = [alt for alt, complete, width in images if not complete or width <= 0]
    assert not broken, f"pictures not decoded: {broken}"
    return len(images)


def _no_horizontal_scroll(driver):
    width, inner = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"page scrolls sideways: {width} px wide in a {inner} px window"


def _no_console_errors(driver):
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def _column(driver, table_css: str, header: str) -> list[float | None]:
    """The column's values as the page orders them (data-v; None for a missing value)."""
    return driver.execute_script("""
        const table = document.querySelector(arguments[0]);
        const col = [...table.tHead.rows[0].cells].findIndex(th => th.innerText.trim() === arguments[1]);
        return [...table.tBodies[0].rows].map(r => r.cells[col].dataset.v === undefined
            ? null : parseFloat(r.cells[col].dataset.v));""", table_css, header)


def _click_header(driver, table_css: str, header: str):
    from selenium.webdriver.common.by import By

    table = driver.find_element(By.CSS_SELECTOR, table_css)
    (th,) = [th for th in table.find_elements(By.CSS_SELECTOR, "thead th")
             if th.text.strip().rstrip("▲▼ ") == header]
    th.click()


def _assert_sorted(values, descending: bool):
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=descending), values
    assert values[len(present):] == [None] * (len(values) - len(present)), \
        f"missing values not last: {values}"


@pytest.mark.slow
def test_real_sweep_page_in_a_browser(browser, mnist_root, tmp_path):
    from selenium.webdriver.common.by import By

    sweep = tmp_path / "sweep"
    proc = run_sweep(mnist_root, sweep, "+experiment=seed_standard,seed_coulomb_4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = list(pd.read_csv(sweep / "table.csv")["job"])
    _open(browser, sweep / "table.html")
    browser.save_screenshot(str(ARTIFACTS / "real_sweep_1366x768.png"))
    rows = browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")
    assert [r.get_attribute("data-job") for r in rows] == jobs
    # the chart sits on top, above the fold; ours beside the study's published FID
    chart = browser.find_element(By.CSS_SELECTOR, "#chart img")
    assert chart.location["y"] < HEIGHT and chart.size["width"] > 400
    assert _check_images(browser) >= 1 + 2 * len(jobs)  # chart, samples and curves
    headers = [th.text.strip() for th in rows[0].find_elements(By.XPATH, "../../thead/tr/th")]
    assert {"rank", "name", "fid_lenet", "seed_fid_inception", "status", "sample"} <= set(headers)
    _no_horizontal_scroll(browser)
    # a thumbnail opens large; a click closes it
    browser.find_element(By.CSS_SELECTOR, "table.runs img.thumb").click()
    big = browser.find_element(By.CSS_SELECTOR, "#lightbox img")
    assert big.is_displayed() and browser.execute_script("return arguments[0].naturalWidth", big) > 0
    viewport = browser.execute_script("return window.innerHeight")
    assert big.size["height"] > 0.8 * viewport  # large: most of the window's height
    browser.save_screenshot(str(ARTIFACTS / "real_sweep_enlarged.png"))
    browser.find_element(By.ID, "lightbox").click()
    assert not big.is_displayed()
    # every other column one click away
    browser.find_element(By.CSS_SELECTOR, "#all-columns summary").click()
    assert browser.find_element(By.CSS_SELECTOR, "table.full").is_displayed()
    _no_horizontal_scroll(browser)
    _no_console_errors(browser)


@pytest.mark.slow
def test_seeded_page_toggle_and_sorting_in_a_browser(browser, seeded_sweep):
    from selenium.webdriver.common.by import By

    frame = aggregate.aggregate([seeded_sweep], echo=False)
    _open(browser, seeded_sweep / "table.html")
    browser.save_screenshot(str(ARTIFACTS / "seeded_sweep_1366x768.png"))
    assert _check_images(browser) >= 2  # the chart and the sweep's curves
    groups = browser.find_elements(By.CSS_SELECTOR, "table.groups tbody tr")
    assert len(groups) == 3
    # the per-seed rows sit behind the toggle
    runs = browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")
    assert len(runs) == len(frame) and not runs[0].is_displayed()
    browser.find_element(By.CSS_SELECTOR, "#per-seed summary").click()
    assert all(r.is_displayed() for r in runs)
    assert sorted(r.get_attribute("data-job") for r in runs) == sorted(frame["job"])
    # click-to-sort, both ways, failed/diverged runs (no FID) last each time
    assert None in _column(browser, "table.runs", "fid_lenet")
    _click_header(browser, "table.runs", "fid_lenet")
    _assert_sorted(_column(browser, "table.runs", "fid_lenet"), descending=False)
    _click_header(browser, "table.runs", "fid_lenet")
    _assert_sorted(_column(browser, "table.runs", "fid_lenet"), descending=True)
    _click_header(browser, "table.groups", "fid_lenet")
    _assert_sorted(_column(browser, "table.groups", "fid_lenet"), descending=False)
    _check_images(browser)
    _no_horizontal_scroll(browser)
    browser.save_screenshot(str(ARTIFACTS / "seeded_sweep_per_seed_sorted.png"))
    _no_console_errors(browser)
