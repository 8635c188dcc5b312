"""The chart page in headless Chromium, against a real daphne serving stored klines.

The page's bars are read from lightweight-charts' own API through the page's
``window.binancewsChart`` hook (never from pixels). BTCUSDT holds more than
one history page, with a hole near the end; the site runs in Asia/Kolkata
(UTC+05:30) so the zone shift shows. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from klines.api.rows import decimal_text
from klines.serving.chart import PAGE_SIZE
from klines.testing.browser import console_errors, wait_in_page
from klines.testing.servers import SecantusServer, stop_process
from tests.browser import Site, chromium_paths, run_manage, save_screenshot, site_env, start_site
from tests.helpers import closed_kline, store_klines

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ZONE_NAME = "Asia/Kolkata"
HOLE = range(1650, 1653)  # three klines never recorded
BTC_OFFSETS = [offset for offset in range(PAGE_SIZE + 200) if offset not in HOLE]
ETH_OFFSETS = range(30)
FIVE_MINUTE_OFFSETS = {"BTCUSDT": range(72), "ETHUSDT": range(12)}  # a second interval, 5m, from the same start
BASE_MS = int(closed_kline("BTCUSDT", 0).open_time.timestamp() * 1000)


def open_ms(offset: int, interval: str = "1m") -> int:
    return BASE_MS + offset * {"1m": 60_000, "5m": 300_000}[interval]


def zone_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(ZONE_NAME)).strftime("%Y-%m-%d %H:%M")


@pytest.fixture(scope="module", autouse=True)
def _chromium_installed() -> None:
    chromium_paths()


@pytest.fixture(scope="module")
def site(secantus: SecantusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    env = {**site_env(secantus, "chart_browser"), "KLINE_TIMEZONE": ZONE_NAME, "KLINE_INTERVALS": "1m,5m"}
    run_manage(["migrate", "--noinput", "-v0"], env)
    store_klines(env, {"BTCUSDT": BTC_OFFSETS, "ETHUSDT": ETH_OFFSETS}, batch=True)
    store_klines(env, FIVE_MINUTE_OFFSETS, batch=True, interval="5m")
    site = start_site(env, tmp_path_factory.mktemp("chart") / "daphne.log")
    yield site
    stop_process(site.process)


DRAWN = """
const c = window.binancewsChart;
const scale = c.chart.timeScale();
const range = scale.getVisibleLogicalRange();
const data = c.candles.data();  // the bars (whitespace points are not returned)
const indexes = data.map((point) => scale.timeToIndex(point.time));
const inView = (i) => range !== null && i >= Math.ceil(range.from) && i <= Math.floor(range.to);
const empty = [];  // logical indexes between the first and last bar that hold no bar: holes
for (let i = indexes[0]; i <= indexes[indexes.length - 1]; i += 1) {
    if (c.candles.dataByIndex(i) === null) empty.push(i);
}
return {
    bars: data.map((p) => c.openTimeOf(p.time)),
    visible: data.filter((p, n) => inView(indexes[n])).map((p) => c.openTimeOf(p.time)),
    empty, indexes, holes: c.holes(), times: data.map((p) => p.time), reachedStart: c.reachedStart(),
    markers: c.markers.markers().map((m) => ({time: c.openTimeOf(m.time), text: m.text})),
};
"""


def drawn(driver) -> dict[str, Any]:
    return driver.execute_script(DRAWN)


def readout(driver) -> dict[str, str]:
    return driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#readout [data-field]')]"
        ".map((d) => [d.dataset.field, d.textContent]))"
    )


def open_chart(driver, site: Site, symbol: str = "BTCUSDT") -> None:
    driver.get(f"{site.url}/chart/{symbol}?interval=1m")
    wait_drawn(driver)


def wait_drawn(driver) -> None:
    ready = "return document.getElementById('chart').dataset.state === 'ready'"
    wait_in_page(driver, lambda d: d.execute_script(ready), "no bars drawn")


def expected_readout(offset: int, interval: str = "1m", symbol: str = "BTCUSDT") -> dict[str, str]:
    kline = closed_kline(symbol, offset, interval)
    return {
        "time": zone_text(open_ms(offset, interval)),
        "open": decimal_text(kline.open),
        "high": decimal_text(kline.high),
        "low": decimal_text(kline.low),
        "close": decimal_text(kline.close),
        "volume": decimal_text(kline.volume),
        "trades": str(kline.trades),
    }


def test_chart_draws_the_stored_klines_of_the_visible_range(site: Site, browser_factory) -> None:
    driver = browser_factory(1280, 800)
    open_chart(driver, site)
    shown = drawn(driver)
    newest_page = BTC_OFFSETS[-PAGE_SIZE:]
    assert shown["bars"] == [open_ms(o) for o in newest_page]  # one request's page, in order, no duplicate
    visible = shown["visible"]
    assert len(visible) > 50
    stored_in_view = [open_ms(o) for o in BTC_OFFSETS if visible[0] <= open_ms(o) <= visible[-1]]
    assert visible == stored_in_view
    assert visible[-1] == open_ms(BTC_OFFSETS[-1])  # the newest kline is in view
    # The chart's times are the zone's wall clock: UTC + 05:30.
    shift_ms = int(timedelta(hours=5, minutes=30).total_seconds() * 1000)
    assert shown["times"][-1] * 1000 == open_ms(BTC_OFFSETS[-1]) + shift_ms
    # Without a crosshair the readout shows the newest kline, digits as stored.
    assert readout(driver) == expected_readout(BTC_OFFSETS[-1])
    save_screenshot(driver, "chart-desktop.png")
    assert [e for e in console_errors(driver) if "/market/ws/" not in e] == []


def test_a_hole_in_the_record_is_a_gap_with_a_marker(site: Site, browser_factory) -> None:
    driver = browser_factory(1280, 800)
    open_chart(driver, site)
    shown = drawn(driver)
    assert shown["holes"] == [{"from": open_ms(HOLE[0]), "missing": 3}]
    before = shown["bars"].index(open_ms(HOLE[0] - 1))
    after = shown["bars"].index(open_ms(HOLE[-1] + 1))
    assert after == before + 1  # no bar drawn for the missing klines, nothing interpolated
    assert shown["empty"] == [shown["indexes"][before] + n for n in (1, 2, 3)]  # but three empty slots between
    assert shown["markers"] == [{"time": open_ms(HOLE[-1] + 1), "text": "hole: 3 missing"}]


def test_crosshair_readout_shows_the_kline_under_it_in_the_zone(site: Site, browser_factory) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    driver = browser_factory(1280, 800)
    open_chart(driver, site)
    offset = BTC_OFFSETS[-20]
    x, width, height = driver.execute_script(
        """
        const c = window.binancewsChart;
        const point = c.candles.data().find((p) => c.openTimeOf(p.time) === arguments[0]);
        const box = document.getElementById('chart').getBoundingClientRect();
        return [c.chart.timeScale().timeToCoordinate(point.time), box.width, box.height];
        """,
        open_ms(offset),
    )
    chart = driver.find_element("id", "chart")
    ActionChains(driver).move_to_element_with_offset(chart, int(x - width / 2), int(-height / 5)).perform()
    wait_in_page(driver, lambda d: readout(d)["time"] == zone_text(open_ms(offset)), "the readout did not follow")
    assert readout(driver) == expected_readout(offset)


def test_scrolling_left_loads_older_pages_until_the_record_starts(site: Site, browser_factory) -> None:
    driver = browser_factory(1280, 800)
    open_chart(driver, site)
    assert drawn(driver)["reachedStart"] is False
    driver.execute_script("window.binancewsChart.chart.timeScale().scrollToPosition(-1480, false)")
    wait_in_page(driver, lambda d: drawn(d)["reachedStart"], "the older page was not loaded")
    shown = drawn(driver)
    assert shown["bars"] == [open_ms(o) for o in BTC_OFFSETS]  # every stored kline once, in order
    assert shown["times"] == sorted(set(shown["times"]))
    history = driver.find_element("id", "history").text
    assert history == f"Start of the record: {zone_text(open_ms(0))}"
    # Scrolled to the very start: the first bars are drawn, nothing more is asked for.
    driver.execute_script("window.binancewsChart.chart.timeScale().scrollToPosition(-5000, false)")
    wait_in_page(driver, lambda d: open_ms(0) in drawn(d)["visible"], "the first kline is not in view")
    assert len(drawn(driver)["bars"]) == len(BTC_OFFSETS)


def test_symbol_search_opens_that_symbols_chart(site: Site, browser_factory) -> None:
    driver = browser_factory(1280, 800)
    open_chart(driver, site)
    field = driver.find_element("id", "symbol-input")
    field.send_keys("dogeusdt\n")
    wait_in_page(driver, lambda d: "DOGEUSDT is not recorded" in d.find_element("id", "search-error").text, "no error")
    field.clear()
    field.send_keys("ethusdt\n")
    wait_in_page(driver, lambda d: d.current_url.endswith("/chart/ETHUSDT?interval=1m"), "search did not navigate")
    open_chart(driver, site, "ETHUSDT")
    assert drawn(driver)["bars"] == [open_ms(o) for o in ETH_OFFSETS]
    assert readout(driver)["close"] == decimal_text(closed_kline("ETHUSDT", ETH_OFFSETS[-1]).close)
    assert current_interval(driver) == [["1m", f"{site.url}/chart/ETHUSDT?interval=1m"]]


def current_interval(driver) -> list[list[str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.intervals a[aria-current=page]')].map((a) => [a.textContent, a.href])"
    )


def test_interval_switch_and_search_load_that_intervals_klines(site: Site, browser_factory) -> None:
    driver = browser_factory(1280, 800)
    open_chart(driver, site)
    links = driver.find_elements("css selector", ".intervals a")
    assert [(a.text, a.get_attribute("href")) for a in links] == [
        (name, f"{site.url}/chart/BTCUSDT?interval={name}") for name in ("1m", "5m")
    ]
    driver.find_element("css selector", ".intervals a[data-interval='5m']").click()
    wait_in_page(driver, lambda d: d.current_url == f"{site.url}/chart/BTCUSDT?interval=5m", "the switch did not go")
    wait_drawn(driver)
    shown = drawn(driver)
    five = FIVE_MINUTE_OFFSETS["BTCUSDT"]
    assert shown["bars"] == [open_ms(o, "5m") for o in five]  # the 5m record, not the 1m one
    assert shown["holes"] == []  # five minutes apart is contiguous at 5m
    assert readout(driver) == expected_readout(five[-1], "5m")
    assert current_interval(driver) == [["5m", f"{site.url}/chart/BTCUSDT?interval=5m"]]
    # The search keeps the interval: ETHUSDT's 5m klines.
    driver.find_element("id", "symbol-input").send_keys("ethusdt\n")
    wait_in_page(driver, lambda d: d.current_url == f"{site.url}/chart/ETHUSDT?interval=5m", "search did not go")
    wait_drawn(driver)
    assert drawn(driver)["bars"] == [open_ms(o, "5m") for o in FIVE_MINUTE_OFFSETS["ETHUSDT"]]
    assert readout(driver) == expected_readout(FIVE_MINUTE_OFFSETS["ETHUSDT"][-1], "5m", "ETHUSDT")
    assert [e for e in console_errors(driver) if "/market/ws/" not in e] == []


def test_chart_fits_a_phone_screen(site: Site, browser_factory) -> None:
    driver = browser_factory(390, 844)
    open_chart(driver, site)
    layout = driver.execute_script(
        "return {inner: window.innerWidth, scroll: document.documentElement.scrollWidth,"
        " chart: document.getElementById('chart').getBoundingClientRect().toJSON()}"
    )
    assert layout["scroll"] <= layout["inner"], "the page scrolls sideways on a phone"
    assert layout["chart"]["width"] > 340 and layout["chart"]["height"] > 300
    assert len(drawn(driver)["visible"]) > 20
    save_screenshot(driver, "chart-phone.png")
    assert [e for e in console_errors(driver) if "/market/ws/" not in e] == []


def test_live_updates_move_the_last_bar_and_a_close_adds_one(
    secantus: SecantusServer, browser_factory, tmp_path: Path
) -> None:
    """A fake exchange -> the real ingest -> Redis -> daphne's /market/ws stream -> the open page.

    With Redis, as in-progress updates reach the streams only through the shared layer.
    """
    from klines.testing.servers import RedisServer
    from tests.fake_exchange import ExchangeThread
    from tests.helpers import Ingest, ingest_env, make_exchange

    exchange = make_exchange(["BTCUSDT"], speed=6.0)  # a 1m kline closes every 10 s, updates every 0.1 s
    redis = RedisServer(tmp_path / "redis.log").start()
    with ExchangeThread(exchange) as thread:
        env = {
            **ingest_env(secantus.uri, "chart_live", thread, ["BTCUSDT"], REDIS_URL=redis.url),
            "KLINE_TIMEZONE": ZONE_NAME,
        }
        run_manage(["migrate", "--noinput", "-v0"], env)
        ingest = Ingest(env, tmp_path).start()
        site = start_site(env, tmp_path / "daphne.log")
        try:
            driver = browser_factory(1280, 800)
            open_chart(driver, site)
            wait_in_page(driver, lambda d: connection(d) == "live", "the stream did not connect")
            driver.execute_script("window.notReloaded = true")
            # The first close seen of each last bar: a close (every 10 s) may start a new bar meanwhile.
            first_close: dict[int, str] = {}

            def moved_in_place(d) -> bool:
                bar = last_bar(d)
                return bar["close"] != first_close.setdefault(bar["time"], bar["close"])

            wait_in_page(driver, moved_in_place, "an in-progress update did not move the last bar")
            count = len(drawn(driver)["bars"])
            wait_in_page(driver, lambda d: len(drawn(d)["bars"]) == count + 1, "a close did not add a bar", timeout=30)
            assert driver.execute_script("return window.notReloaded") is True
            assert drawn(driver)["holes"] == []
        finally:
            stop_process(site.process)
            ingest.stop()
            redis.stop()


def connection(driver) -> str:
    return driver.find_element("id", "status").get_attribute("data-state")


def last_bar(driver) -> dict[str, Any]:
    return driver.execute_script("const d = window.binancewsChart.candles.data(); return d[d.length - 1];")
