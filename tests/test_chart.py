"""The chart page's HTML, its policy and its vendored library, through Django's test client (no browser)."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace
from pathlib import Path

from django.contrib.staticfiles import finders
from django.test import Client

from klines.serving.chart import LIBRARY_STYLE_HASH
from tests.helpers import SYMBOLS

VENDOR = "klines/vendor/lightweight-charts/"


def test_chart_page_for_a_recorded_symbol_and_interval(client: Client) -> None:
    response = client.get("/chart/BTCUSDT?interval=1m")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-symbol="BTCUSDT"' in html and 'data-interval="1m"' in html
    assert 'data-timezone="UTC"' in html
    assert re.findall(r'<option value="(\w+)">', html) == sorted(SYMBOLS)
    assert re.findall(r'data-interval="(\w+)" aria-current="page"', html) == ["1m"]


def test_chart_address_is_canonical(client: Client) -> None:
    for path in ("/chart/btcusdt?interval=1m", "/chart/BTCUSDT", "/chart/btcusdt"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == "/chart/BTCUSDT?interval=1m"


def test_unknown_symbol_or_interval_is_a_404_page(client: Client) -> None:
    assert client.get("/chart/DOGEUSDT?interval=1m").status_code == 404
    assert client.get("/chart/BTCUSDT?interval=5m").status_code == 404
    assert client.get("/chart/BTCUSDT?interval=nonsense").status_code == 404


def test_chart_follows_the_recorded_symbols_and_zone(client: Client, settings) -> None:
    settings.BINANCEWS = replace(
        settings.BINANCEWS,
        symbols=("dogeusdt",),
        feed_symbols=("dogeusdt",),
        intervals=("5m",),
        timezone="Asia/Kolkata",
    )
    assert client.get("/chart/BTCUSDT?interval=5m").status_code == 404
    html = client.get("/chart/DOGEUSDT?interval=5m").content.decode()
    assert 'data-interval-ms="300000"' in html and 'data-timezone="Asia/Kolkata"' in html


def test_chart_page_loads_only_its_own_files(client: Client) -> None:
    response = client.get("/chart/BTCUSDT?interval=1m")
    html = response.content.decode()
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        # The one foreign address is the attribution link the licence asks for; it is never loaded.
        assert url.startswith("/") or url == "https://www.tradingview.com/", url
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert re.search(r"style-src 'self' '[^']+'$", policy)


def test_attribution_notice_is_on_the_page(client: Client) -> None:
    html = client.get("/chart/BTCUSDT?interval=1m").content.decode()
    notice = Path(finders.find(VENDOR + "NOTICE")).read_text(encoding="utf-8").splitlines()
    assert notice == [
        "TradingView Lightweight Charts",
        "Copyright (с) 2023 TradingView, Inc. https://www.tradingview.com/",
    ]
    assert notice[1].removesuffix(" https://www.tradingview.com/") in html
    assert '<a href="https://www.tradingview.com/"' in html


def test_vendored_library_ships_with_its_licence_and_notice() -> None:
    for name in ("lightweight-charts.standalone.production.js", "LICENSE", "NOTICE"):
        assert finders.find(VENDOR + name), name
    assert "Apache License" in Path(finders.find(VENDOR + "LICENSE")).read_text()
    for name in ("klines/chart.js", "klines/chart.css"):
        assert finders.find(name), name


def test_policy_allows_exactly_the_style_the_library_inserts() -> None:
    """lightweight-charts adds one constant <style> for its logo; an update that changes it must update the hash."""
    source = Path(finders.find(VENDOR + "lightweight-charts.standalone.production.js")).read_text()
    styles = re.findall(r'createElement\("style"\),this\.\w+\.innerText="([^"]*)"', source)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"sha256-{digest}" == LIBRARY_STYLE_HASH


def test_chart_answers_get_and_head_only(client: Client) -> None:
    assert client.head("/chart/BTCUSDT?interval=1m").status_code == 200
    assert client.post("/chart/BTCUSDT?interval=1m").status_code == 405
