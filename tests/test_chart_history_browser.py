"""The chart scrolls back through a long record page by page to its oldest kline, asking for each range once.

BTCUSDT holds three full pages and a part (as ``backfill_klines`` leaves a record): scrolling left
loads the older pages one after the other, each asked for below the oldest kline drawn, until the
short page says the record starts; nothing already drawn is asked for again.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from klines.serving.chart import PAGE_SIZE
from klines.testing.browser import console_errors, wait_in_page
from klines.testing.servers import SecantusServer, stop_process
from tests.browser import Site, chromium_paths, run_manage, site_env, start_site
from tests.helpers import closed_kline, store_klines

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

RECORD = 3 * PAGE_SIZE + 300  # three full pages and a short one
BASE_MS = int(closed_kline("BTCUSDT", 0).open_time.timestamp() * 1000)

# Every request the page sends from now on, by URL (chart.js calls the global fetch each time).
RECORD_REQUESTS = """
window.sentRequests = [];
const original = window.fetch.bind(window);
window.fetch = (url, options) => { window.sentRequests.push(String(url)); return original(url, options); };
"""
STATE = """
const c = window.binancewsChart;
const data = c.candles.data();
return {
    bars: data.map((p) => c.openTimeOf(p.time)), reachedStart: c.reachedStart(),
    loading: document.getElementById('chart').dataset.loadingOlder === 'true', requests: window.sentRequests,
};
"""


@pytest.fixture(scope="module", autouse=True)
def _chromium_installed() -> None:
    chromium_paths()


@pytest.fixture(scope="module")
def site(secantus: SecantusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    env = site_env(secantus, "chart_history_browser")
    run_manage(["migrate", "--noinput", "-v0"], env)
    store_klines(env, {"BTCUSDT": range(RECORD)}, batch=True)
    site = start_site(env, tmp_path_factory.mktemp("chart-history") / "daphne.log")
    yield site
    stop_process(site.process)


def older_requests(requests: list[str]) -> list[int]:
    """The ``endTime`` of each request for older klines."""
    queries = [parse_qs(urlsplit(url).query) for url in requests if "/fapi/v1/klines" in url]
    return [int(q["endTime"][0]) for q in queries if "endTime" in q]


def test_scrolling_left_loads_every_older_page_once_down_to_the_oldest(site: Site, browser_factory) -> None:
    driver = browser_factory(1280, 800)
    driver.get(f"{site.url}/chart/BTCUSDT?interval=1m")
    ready = "return document.getElementById('chart').dataset.state === 'ready'"
    wait_in_page(driver, lambda d: d.execute_script(ready), "no bars drawn")
    driver.execute_script(RECORD_REQUESTS)
    state = driver.execute_script(STATE)
    assert len(state["bars"]) == PAGE_SIZE and not state["reachedStart"]
    while not state["reachedStart"]:
        shown = len(state["bars"])
        driver.execute_script(f"window.binancewsChart.chart.timeScale().scrollToPosition(-{shown - 10}, false)")
        wait_in_page(
            driver,
            lambda d, shown=shown: (s := d.execute_script(STATE))["reachedStart"] or len(s["bars"]) > shown,
            "no older page was loaded",
        )
        wait_in_page(driver, lambda d: not d.execute_script(STATE)["loading"], "the older page did not finish")
        state = driver.execute_script(STATE)
    assert state["bars"] == [BASE_MS + n * 60_000 for n in range(RECORD)]  # every stored kline once, in order
    # One request per older page, each just below the oldest kline drawn when it was sent: nothing twice.
    expected = [BASE_MS + oldest * 60_000 - 1 for oldest in (RECORD - PAGE_SIZE, RECORD - 2 * PAGE_SIZE, 300)]
    assert older_requests(state["requests"]) == expected
    # At the very start nothing more is asked for.
    driver.execute_script("window.binancewsChart.chart.timeScale().scrollToPosition(-100000, false)")
    wait_in_page(driver, lambda d: BASE_MS in d.execute_script(STATE)["bars"], "the first kline is not drawn")
    assert older_requests(driver.execute_script(STATE)["requests"]) == expected
    assert console_errors(driver) == []
