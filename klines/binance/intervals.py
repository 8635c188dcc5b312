"""Binance's kline intervals (USD-M futures) and their length."""

from __future__ import annotations

# Fixed-length intervals with their length in seconds. ``1M`` (calendar months)
# has no fixed length and is not recorded.
INTERVAL_SECONDS = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
    "3d": 259200,
    "1w": 604800,
}


def interval_ms(interval: str) -> int:
    """Length of ``interval`` in milliseconds."""
    return INTERVAL_SECONDS[interval] * 1000
