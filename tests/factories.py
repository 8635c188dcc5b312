"""Build klines for tests from the simulated exchange's ground truth."""

from __future__ import annotations

from klines.binance.parse import ClosedKline, parse_rest_row
from klines.simexchange.series import KlineSeries

SERIES = KlineSeries(interval="1m", interval_ms=60_000)
BASE_INDEX = 29_401_080  # 2025-11-25 10:00 UTC in minutes since the epoch


def closed_kline(symbol: str = "BTCUSDT", offset: int = 0) -> ClosedKline:
    """The ground-truth kline ``offset`` minutes after 2025-11-25 10:00 UTC."""
    row = SERIES.kline(symbol, BASE_INDEX + offset).rest_row()
    return parse_rest_row(row, symbol=symbol, interval="1m")
