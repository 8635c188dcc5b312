"""The dashboard page's HTML, through Django's test client (no browser, no database)."""

from __future__ import annotations

import re
from dataclasses import replace

from django.contrib.staticfiles import finders
from django.test import Client

from tests.helpers import SYMBOLS


def test_dashboard_has_one_panel_per_coin_in_symbol_order(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'data-coin="(\w+)"', html) == SYMBOLS
    assert 'role="status"' in html and 'aria-live="polite"' in html


def test_dashboard_follows_the_configured_symbols(client: Client, settings) -> None:
    settings.BINANCEWS = replace(
        settings.BINANCEWS, symbols=("ethusdt", "dogeusdt"), feed_symbols=("ethusdt", "dogeusdt")
    )
    html = client.get("/").content.decode()
    assert re.findall(r'data-coin="(\w+)"', html) == ["ETHUSDT", "DOGEUSDT"]


def test_dashboard_loads_nothing_from_other_hosts(client: Client) -> None:
    response = client.get("/")
    html = response.content.decode()
    assert not re.search(r"(https?:|wss?:)?//[\w.-]+", html), "the page must not reference another host"
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/"), url
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy


def test_dashboard_assets_are_served_by_the_project() -> None:
    for name in ("klines/dashboard.js", "klines/dashboard.css", "klines/favicon.svg"):
        assert finders.find(name), name


def test_dashboard_answers_get_and_head_only(client: Client) -> None:
    assert client.head("/").status_code == 200
    assert client.post("/").status_code == 405


def test_admin_still_lives_at_admin(client: Client) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_each_panel_links_to_its_chart(client: Client) -> None:
    html = client.get("/").content.decode()
    assert re.findall(r'<a href="/chart/(\w+)\?interval=1m"', html) == SYMBOLS
