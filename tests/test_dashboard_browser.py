"""The dashboard and the admin in headless Chromium, against a real daphne process.

A daphne subprocess serves a database of its own on the session's SecantusDB,
with DEBUG off as in production. Klines are stored the way the ingest stores
them (``save_kline`` in another process); the daphne's feed picks new closes up
from the database and pushes them to the open page. Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from klines.serving.payloads import build_payload
from klines.testing.browser import console_errors, wait_in_page
from klines.testing.servers import SecantusServer, stop_process
from tests.browser import Site, chromium_paths, run_manage, save_screenshot, site_env, start_site
from tests.helpers import SYMBOLS, ZONE, closed_kline, store_klines

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Stored before the page opens: a full window, an exact window, a short one, one kline, none.
SEEDED = {"BTCUSDT": 12, "BNBUSDT": 10, "ETHUSDT": 3, "SOLUSDT": 1, "XRPUSDT": 0}
ADMIN_PASSWORD = "browser-test-password"


def expected(symbol: str, count: int) -> dict[str, Any]:
    klines = [closed_kline(symbol, offset) for offset in range(count)]
    return build_payload(symbol, klines[-11:], ZONE)


def price_text(values: list[float], value: float) -> str:
    """The page's price format: en-US grouping, as many decimals as the coin's most precise close."""

    def decimals(v: float) -> int:
        text = repr(v).removesuffix(".0")
        return len(text.partition(".")[2])

    return f"{value:,.{max(map(decimals, values))}f}"


@pytest.fixture(scope="module", autouse=True)
def _chromium_installed() -> None:
    """Skip before starting any server when there is no browser (fail instead in CI)."""
    chromium_paths()


@pytest.fixture(scope="module")
def site(secantus: SecantusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A migrated database with the seeded klines, served by a real daphne."""
    env = site_env(secantus, "dashboard_browser")
    run_manage(["migrate", "--noinput", "-v0"], env)
    store_klines(env, {symbol: range(count) for symbol, count in SEEDED.items()})
    site = start_site(env, tmp_path_factory.mktemp("dashboard") / "daphne.log")
    yield site
    stop_process(site.process)


def panel(driver, coin: str) -> dict[str, Any]:
    """What a person sees in one panel, read from the DOM (colours as computed by the browser)."""
    return driver.execute_script(
        """
        const panel = document.querySelector(`.panel[data-coin="${arguments[0]}"]`);
        const text = (selector) => panel.querySelector(selector).textContent.trim();
        return {
            state: panel.dataset.state,
            close: text('[data-role="close"]'),
            change: text('[data-role="change"]'),
            waiting: panel.querySelector(".waiting") !== null,
            points: [...panel.querySelectorAll("svg .point")].map((p) => ({
                operation: p.classList.contains("buy") ? "BUY" : "SELL",
                fill: getComputedStyle(p).fill,
            })),
            ticks: [...panel.querySelectorAll("svg .tick")].map((t) => t.textContent),
            axes: [...panel.querySelectorAll("svg .axis")].map((t) => t.textContent),
            link: panel.querySelector("h2 a").getAttribute("href"),
            rows: [...panel.querySelectorAll('[data-role="table"] tbody tr')].map(
                (r) => [...r.cells].map((c) => c.textContent)),
            box: panel.getBoundingClientRect().toJSON(),
        };
        """,
        coin,
    )


def rgb(css: str) -> tuple[int, ...]:
    return tuple(int(part) for part in css.removeprefix("rgb(").removesuffix(")").split(","))


def assert_panel_shows(driver, coin: str, payload: dict[str, Any]) -> None:
    shown = panel(driver, coin)
    values = payload["values"]
    if not values:
        assert shown["state"] == "empty" and shown["waiting"], shown
        assert shown["points"] == [] and shown["close"] == "—"
        return
    assert shown["state"] == "ready", shown
    assert len(shown["points"]) == len(values)
    assert [p["operation"] for p in shown["points"]] == payload["operations"]
    for point in shown["points"]:
        red, green, _ = rgb(point["fill"])
        assert (green > red) if point["operation"] == "BUY" else (red > green), point
    assert shown["close"] == price_text(values, values[-1])
    assert shown["rows"] == [
        [t, price_text(values, v), op] for t, v, op in zip(payload["time"], values, payload["operations"], strict=True)
    ]
    assert shown["ticks"][-1] == payload["time"][-1]
    assert shown["link"] == f"/chart/{coin}?interval=1m"
    if len(set(values)) > 1:  # the extremes are of the closes, and say so
        highest, lowest = price_text(values, max(values)), price_text(values, min(values))
        assert shown["axes"] == [f"highest close {highest}", f"lowest close {lowest}"]
    assert set(shown["ticks"]) <= set(payload["time"])
    if len(values) == 1:
        assert shown["change"] == "first close"
    else:
        change = values[-1] - values[-2]
        prefix = "▲ +" if change > 0 else "▼ −" if change < 0 else "■ "
        assert shown["change"].startswith(prefix), shown["change"]
        shown_change = float(shown["change"].removeprefix(prefix).split()[0].replace(",", ""))
        assert shown_change == pytest.approx(abs(change), abs=10.0 ** -len(shown["close"].partition(".")[2]))


def connection(driver) -> str:
    """The connection state the page shows: connecting, live or offline."""
    return driver.find_element("id", "status").get_attribute("data-state")


def seeded_panels_drawn(driver) -> bool:
    ready = all(panel(driver, s)["state"] == "ready" for s, n in SEEDED.items() if n)
    return ready and len(panel(driver, "BTCUSDT")["points"]) == 10


def open_dashboard(driver, site: Site) -> None:
    driver.get(site.url + "/")
    wait_in_page(driver, lambda d: connection(d) == "live", "the page did not connect")
    wait_in_page(driver, seeded_panels_drawn, "the panels were not drawn")


def test_dashboard_shows_stored_klines_and_updates_without_reload(site: Site, browser_factory) -> None:
    driver = browser_factory(1366, 900)
    open_dashboard(driver, site)

    coins = driver.execute_script("return [...document.querySelectorAll('.panel')].map((p) => p.dataset.coin)")
    assert coins == SYMBOLS
    for symbol, count in SEEDED.items():
        assert_panel_shows(driver, symbol, expected(symbol, count))
    assert len(panel(driver, "BTCUSDT")["points"]) == 10  # 12 stored, the last 10 shown
    assert driver.find_element("id", "status").text == "Live"
    save_screenshot(driver, "dashboard.png")

    driver.execute_script("window.notReloaded = true")
    store_klines(site.env, {"ETHUSDT": range(3, 4), "XRPUSDT": range(1)})  # a new close, and a first one
    wait_in_page(driver, lambda d: len(panel(d, "ETHUSDT")["points"]) == 4, "ETHUSDT panel did not update")
    wait_in_page(driver, lambda d: panel(d, "XRPUSDT")["state"] == "ready", "XRPUSDT panel did not update")

    assert driver.execute_script("return window.notReloaded") is True
    assert_panel_shows(driver, "ETHUSDT", expected("ETHUSDT", 4))
    assert_panel_shows(driver, "XRPUSDT", expected("XRPUSDT", 1))
    assert_panel_shows(driver, "BTCUSDT", expected("BTCUSDT", 12))  # untouched
    save_screenshot(driver, "dashboard-updated.png")
    assert console_errors(driver) == []


def test_dashboard_fits_a_phone_screen(site: Site, browser_factory) -> None:
    driver = browser_factory(390, 844)
    open_dashboard(driver, site)
    layout = driver.execute_script(
        "return {inner: window.innerWidth, scroll: document.documentElement.scrollWidth,"
        " charts: [...document.querySelectorAll('.chart svg')].map((s) => s.getBoundingClientRect().width)}"
    )
    assert layout["inner"] <= 400
    assert layout["scroll"] <= layout["inner"], "the page scrolls sideways on a phone"
    boxes = [panel(driver, s)["box"] for s in SYMBOLS]
    assert all(box["right"] <= layout["inner"] for box in boxes)
    assert [box["top"] for box in boxes] == sorted(box["top"] for box in boxes)  # one column
    assert all(width > 250 for width in layout["charts"])
    assert len(panel(driver, "BTCUSDT")["points"]) == 10
    save_screenshot(driver, "dashboard-phone.png")
    assert console_errors(driver) == []


RECORD_STATUS = """
window.statusLog = [];
const status = document.getElementById("status");
new MutationObserver(() => window.statusLog.push(status.textContent.trim()))
    .observe(status, {subtree: true, childList: true, characterData: true});
"""


def retry_delays(driver) -> list[int]:
    """The "retrying in N s" delays the status line has shown since RECORD_STATUS, in order."""
    log = driver.execute_script("return window.statusLog")
    return [int(m.group(1)) for m in map(re.compile(r"retrying in (\d+) s").search, log) if m]


def test_dashboard_reconnects_with_backoff_when_the_server_comes_back(
    site: Site, browser_factory, tmp_path: Path
) -> None:
    # A daphne of this test's own on the same database, stopped and restarted on the same port.
    own = start_site(site.env, tmp_path / "daphne.log")
    driver = browser_factory(1366, 900)
    try:
        open_dashboard(driver, own)
        driver.execute_script(RECORD_STATUS)
        stop_process(own.process)
        wait_in_page(driver, lambda d: len(retry_delays(d)) >= 2, "the page did not retry")
        first, second = retry_delays(driver)[:2]
        assert first == 1 and 2 <= second <= 3  # 1 s, then doubled (with up to 20 % jitter)
        assert connection(driver) in ("offline", "connecting")
        assert panel(driver, "BTCUSDT")["state"] == "ready"  # the last data stays on screen

        own = start_site(site.env, tmp_path / "daphne.log", port=own.port)
        driver.execute_script("window.dispatchEvent(new Event('online'))")  # network back: retry now
        wait_in_page(driver, lambda d: connection(d) == "live", "the page did not reconnect", timeout=10)
        wait_in_page(driver, seeded_panels_drawn, "no frames after the reconnect")
    finally:
        stop_process(own.process)
    errors = [e for e in console_errors(driver) if "WebSocket connection" not in e]  # the failed retries
    assert errors == []


def test_admin_login_shows_the_kline_list_with_filters(site: Site, browser_factory) -> None:
    from selenium.webdriver.common.by import By

    run_manage(
        ["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"],
        {**site.env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
    )
    driver = browser_factory(1366, 900)
    driver.get(site.url + "/admin/klines/kline/")
    assert "/admin/login/" in driver.current_url
    driver.find_element(By.ID, "id_username").send_keys("admin")
    driver.find_element(By.ID, "id_password").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_in_page(driver, lambda d: d.current_url.endswith("/admin/klines/kline/"), "login did not reach the list")

    filters = wait_in_page(driver, lambda d: d.find_elements(By.ID, "changelist-filter"), "no list filters")[0]
    headings = [h.text.lower() for h in filters.find_elements(By.TAG_NAME, "summary")] or [
        h.text.lower() for h in filters.find_elements(By.TAG_NAME, "h3")
    ]
    assert any("symbol" in h for h in headings) and any("interval" in h for h in headings), headings
    choices = {a.text for a in filters.find_elements(By.TAG_NAME, "a")}
    assert {"BTCUSDT", "BNBUSDT", "ETHUSDT", "SOLUSDT", "1m"} <= choices
    rows = driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) >= sum(SEEDED.values())
    # The admin's own CSS is served under daphne with DEBUG off.
    background = driver.execute_script("return getComputedStyle(document.getElementById('header')).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    save_screenshot(driver, "admin-klines.png")
    assert [e for e in console_errors(driver) if "/favicon.ico" not in e] == []  # the admin has no favicon
