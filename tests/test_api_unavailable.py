"""The mirror before the ingest has fetched anything, and without a database: Binance-shaped errors, never a 500."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db(transaction=True)
def test_exchange_info_before_the_ingest_fetched_it_is_a_503_json_error() -> None:
    response = Client().get("/fapi/v1/exchangeInfo")
    assert response.status_code == 503
    assert response.json()["code"] == -1001


@pytest.mark.django_db(transaction=True)
def test_an_empty_record_is_an_empty_page() -> None:
    response = Client().get("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    assert (response.status_code, response.json()) == (200, [])
