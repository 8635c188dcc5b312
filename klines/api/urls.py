"""Routes of the Binance-compatible HTTP API, mounted at ``/fapi/``."""

from __future__ import annotations

from django.urls import path, re_path

from klines.api import derivatives, views

urlpatterns = [
    path("v1/klines", views.klines, name="fapi-klines"),
    path("v1/markPriceKlines", derivatives.mark_price_klines, name="fapi-mark-price-klines"),
    path("v1/fundingRate", derivatives.funding_rate, name="fapi-funding-rate"),
    path("v1/time", views.server_time, name="fapi-time"),
    path("v1/ping", views.ping, name="fapi-ping"),
    path("v1/exchangeInfo", views.exchange_info, name="fapi-exchange-info"),
    re_path(r"", views.not_found),
]
