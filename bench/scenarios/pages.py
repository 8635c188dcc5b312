"""Scenario pages: time until a page has drawn its data, in headless Chromium, chart page vs the overview.

The chart page (``/chart/BTCUSDT?interval=1m``) is given 1,500 stored bars,
one full history page; the overview (``/``) its five panels. Each run opens a
fresh browser (empty cache) and measures from the navigation's start to the
first animation frame after the page's data is in place: the chart's
``data-state="ready"`` (lightweight-charts has the bars), or all five overview
panels ``ready``.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench.options import Options
from bench.report import fmt
from bench.scenarios import SYMBOLS, Outcome
from bench.stack import Stack

DATABASE = "bench_pages"
BARS = 1500
PAGES = {
    "chart page, 1,500 bars": (
        "/chart/BTCUSDT?interval=1m",
        "document.getElementById('chart')?.dataset.state === 'ready'",
    ),
    "overview /, 5 panels": ("/", "document.querySelectorAll('.panel[data-state=ready]').length === 5"),
}
# Installed before the page's own scripts: note when the condition first holds, one frame later.
RECORDER = """
window.binancewsDrawnAt = null;
const observer = new MutationObserver(() => {
  if (window.binancewsDrawnAt !== null || !(%s)) return;
  observer.disconnect();
  requestAnimationFrame(() => { window.binancewsDrawnAt = performance.now(); });
});
observer.observe(document, {subtree: true, childList: true, attributes: true});
"""


def time_to_drawn(url: str, condition: str, profile: Path) -> float:
    """Milliseconds from navigation start until the page's data is drawn, in a fresh headless Chromium."""
    from klines.testing.browser import start_chromium, wait_in_page

    driver = start_chromium(width=1280, height=800, profile_dir=profile)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER % condition})
        driver.get(url)
        return wait_in_page(driver, lambda d: d.execute_script("return window.binancewsDrawnAt"), "not drawn", 60)
    finally:
        driver.quit()


async def run(stack: Stack, options: Options) -> Outcome:
    env = stack.env(DATABASE)
    stack.prepare_database(env, symbols=SYMBOLS, count=BARS)
    _, port = stack.daphne("pages-daphne", env)
    runs = 5
    outcome = Outcome("pages", {"bars": BARS, "runs": runs})
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profiles:
        for subject, (path, condition) in PAGES.items():
            url = f"http://127.0.0.1:{port}{path}"
            time_to_drawn(url, condition, Path(profiles) / "warm-up")  # daphne's first request, imports
            times = [time_to_drawn(url, condition, Path(profiles) / f"{path.strip('/')}-{n}") for n in range(runs)]
            outcome.data[path] = {"ms": times, "median_ms": statistics.median(times)}
            figures = f"median {fmt(statistics.median(times))} ms, max {fmt(max(times))} ms over {runs} runs"
            outcome.rows.append(("page drawn (headless Chromium)", subject, figures, "navigation start to drawn, cold"))
    return outcome
