"""The simulated exchange's mark-price klines and funding rates, deterministic like its klines.

A mark-price kline is the kline of the same open time with its prices moved by a
small made-up premium (eight decimals), volumes ``"0"`` and one price sample a
second, as Binance's rows look. Funding settles every 8 hours (00:00, 08:00,
16:00 UTC) at a made-up rate, with the mark price at that moment.

The mark-price stream (``<symbol>@markPrice@1s`` or ``@markPrice``) agrees with both: an update at ``E``
carries the mark price of the 1m mark-price kline open at ``E`` so far (at a funding time, exactly the
funding's ``markPrice``) and, as ``r``, the rate REST reports for the next funding time ``T``.
"""

from __future__ import annotations

from decimal import Decimal
from http import HTTPStatus
from typing import Any

from klines.binance.derivatives import FUNDING_DEFAULT_LIMIT, FUNDING_MAX_LIMIT, MARK_DEFAULT_LIMIT, MARK_MAX_LIMIT
from klines.simexchange.series import KlineSeries, SimKline, _unit

FUNDING_MS = 8 * 3600 * 1000
EIGHT_PLACES = Decimal("0.00000001")


def _premium(symbol: str, open_ms: int, seed: int) -> Decimal:
    return Decimal(1) + Decimal(str(round(0.0004 * (_unit(seed, symbol, open_ms, "mark") - 0.5), 8)))


def mark_row(kline: SimKline, *, seed: int, samples: int) -> list[Any]:
    """The ``/fapi/v1/markPriceKlines`` row of the kline's open time."""
    premium = _premium(kline.symbol, kline.open_ms, seed)
    o, h, lo, c = (
        str((Decimal(p) * premium).quantize(EIGHT_PLACES)) for p in (kline.open, kline.high, kline.low, kline.close)
    )
    return [kline.open_ms, o, h, lo, c, "0", kline.close_ms, "0", samples, "0", "0", "0"]


def funding_rate(seed: int, symbol: str, funding_ms: int) -> str:
    """The rate of ``symbol``'s funding at ``funding_ms`` (a multiple of 8 h), as REST writes it."""
    rate = Decimal(str(round(0.0001 + 0.0004 * (_unit(seed, symbol, funding_ms, "funding") - 0.5), 8)))
    return format(rate.quantize(EIGHT_PLACES), "f")


def funding_entry(series: KlineSeries, symbol: str, funding_ms: int) -> dict[str, Any]:
    """The funding of ``symbol`` settled at ``funding_ms`` (a multiple of 8 h); ``series`` is the 1m one."""
    kline = series.kline(symbol, series.index_at(funding_ms))
    price = str((Decimal(kline.open) * _premium(symbol, kline.open_ms, series.seed)).quantize(EIGHT_PLACES))
    return {
        "symbol": symbol,
        "fundingTime": funding_ms,
        "fundingRate": funding_rate(series.seed, symbol, funding_ms),
        "markPrice": price,
    }


def mark_price_at(series: KlineSeries, symbol: str, at_ms: int) -> tuple[str, str]:
    """(mark price, index price) of ``symbol`` at ``at_ms``; ``series`` is the 1m one."""
    index = series.index_at(at_ms)
    kline = series.partial(symbol, index, (at_ms % series.interval_ms) / series.interval_ms)
    premium = _premium(symbol, kline.open_ms, series.seed)
    return str((Decimal(kline.close) * premium).quantize(EIGHT_PLACES)), kline.close


def mark_price_event(series: KlineSeries, symbol: str, at_ms: int, *, stream: str) -> dict[str, Any]:
    """The combined-stream frame of ``<symbol>@<stream>`` at ``at_ms``; ``series`` is the 1m one."""
    next_funding = (at_ms // FUNDING_MS + 1) * FUNDING_MS
    mark, index = mark_price_at(series, symbol, at_ms)
    data = {
        "e": "markPriceUpdate",
        "E": at_ms,
        "s": symbol,
        "p": mark,
        "i": index,
        "P": mark,
        "r": funding_rate(series.seed, symbol, next_funding),
        "T": next_funding,
    }
    return {"stream": f"{symbol.lower()}@{stream}", "data": data}


def _ints(query: dict[str, list[str]], *names: str) -> list[int | None]:
    return [int(query[n][0]) if query.get(n, [""])[0] else None for n in names]


def rest_mark_klines(exchange: Any, query: dict[str, list[str]]) -> tuple[HTTPStatus, Any]:
    """``GET /fapi/v1/markPriceKlines``: as ``/fapi/v1/klines``, the still-open kline included."""
    symbol = query.get("symbol", [""])[0].upper()
    if symbol not in exchange.symbols:
        return HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."}
    series = exchange.history_series(query.get("interval", [""])[0])
    if series is None:
        return HTTPStatus.BAD_REQUEST, {"code": -1120, "msg": "Invalid interval."}
    limit, start, end = _ints(query, "limit", "startTime", "endTime")
    limit = min(limit or MARK_DEFAULT_LIMIT, MARK_MAX_LIMIT)
    now = exchange.now_ms()
    current = series.index_at(now)
    last = min(series.index_at(end if end is not None else now), current)
    first = last - limit + 1 if start is None else -(-start // series.interval_ms)
    last = min(last, first + limit - 1)
    samples = series.interval_ms // 1000
    rows = []
    for index in range(first, last + 1):
        kline = exchange._rest_kline(series, symbol, index, current)
        rows.append(mark_row(kline, seed=series.seed, samples=samples if index < current else 1))
    return HTTPStatus.OK, rows


def rest_funding(exchange: Any, query: dict[str, list[str]]) -> tuple[HTTPStatus, Any]:
    """``GET /fapi/v1/fundingRate``: fundings settled by now, from startTime (or the newest), at most limit."""
    symbol = query.get("symbol", [""])[0].upper()
    if symbol not in exchange.symbols:
        return HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."}
    limit, start, end = _ints(query, "limit", "startTime", "endTime")
    limit = min(limit or FUNDING_DEFAULT_LIMIT, FUNDING_MAX_LIMIT)
    now = exchange.now_ms()
    last = min(end if end is not None else now, now) // FUNDING_MS
    first = last - limit + 1 if start is None else -(-start // FUNDING_MS)
    last = min(last, first + limit - 1)
    series = exchange.history_series("1m")
    return HTTPStatus.OK, [funding_entry(series, symbol, i * FUNDING_MS) for i in range(first, last + 1)]
