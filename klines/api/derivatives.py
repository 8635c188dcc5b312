"""``GET /fapi/v1/markPriceKlines`` and ``GET /fapi/v1/fundingRate``, answered from the record as Binance does.

Mark-price klines follow ``/fapi/v1/klines``'s rules (:func:`parse_kline_query`), at the recorded
intervals and freqtrade's (:func:`mark_intervals`); funding rates Binance's own (:func:`parse_funding_query`).
Only what is stored is served: closed mark-price klines and settled fundings.
"""

from __future__ import annotations

from datetime import datetime

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from klines.api.params import parse_funding_query, parse_kline_query
from klines.api.recorded import recorded, refresh_recorded
from klines.api.views import binance_endpoint, json_response
from klines.binance.derivatives import funding_entry, mark_intervals, mark_row
from klines.binance.parse import ms_to_datetime
from klines.store.derivatives import funding_page, mark_page


def _moment(ms: int | None) -> datetime | None:
    return None if ms is None else ms_to_datetime(ms)


@binance_endpoint
async def mark_price_klines(request: HttpRequest) -> HttpResponse:
    """``GET /fapi/v1/markPriceKlines``: Binance's 12-value rows, volumes ``"0"``."""
    await refresh_recorded()
    symbols, intervals = recorded()
    query = parse_kline_query(request.GET, symbols=symbols, intervals=mark_intervals(sorted(intervals)))
    rows = await sync_to_async(mark_page, thread_sensitive=False)(
        query.symbol, query.interval, start=_moment(query.start_ms), end=_moment(query.end_ms), limit=query.limit
    )
    return json_response([mark_row(row) for row in rows])


@binance_endpoint
async def funding_rate(request: HttpRequest) -> HttpResponse:
    """``GET /fapi/v1/fundingRate``: ``[{"symbol", "fundingTime", "fundingRate", "markPrice"}]``, oldest first."""
    await refresh_recorded()
    symbols, _ = recorded()
    query = parse_funding_query(request.GET, symbols=symbols)
    rows = await sync_to_async(funding_page, thread_sensitive=False)(
        query.symbols, start=_moment(query.start_ms), end=_moment(query.end_ms), limit=query.limit
    )
    return json_response([funding_entry(row) for row in rows])
