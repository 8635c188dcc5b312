"""Pure: the contracts an ``exchangeInfo`` answer lists as trading perpetuals (what ``KLINE_SYMBOLS=all`` records)."""

from __future__ import annotations

from typing import Any

from klines.binance.parse import MalformedMessage


def tradable_perpetuals(exchange_info: Any) -> tuple[str, ...]:
    """Upper-case symbols whose ``status`` is ``TRADING`` and ``contractType`` is ``PERPETUAL``, in listed order."""
    symbols = exchange_info.get("symbols") if isinstance(exchange_info, dict) else None
    if not isinstance(symbols, list):
        raise MalformedMessage(f"exchangeInfo has no 'symbols' list: {str(exchange_info)[:200]}", kind="exchangeInfo")
    return tuple(
        entry["symbol"].upper()
        for entry in symbols
        if isinstance(entry, dict)
        and isinstance(entry.get("symbol"), str)
        and entry.get("status") == "TRADING"
        and entry.get("contractType") == "PERPETUAL"
    )


def listing_dates(exchange_info: Any) -> dict[str, int]:
    """Every listed contract (trading or not) -> its ``onboardDate`` (ms; 0 when not given)."""
    symbols = exchange_info.get("symbols") if isinstance(exchange_info, dict) else None
    if not isinstance(symbols, list):
        raise MalformedMessage(f"exchangeInfo has no 'symbols' list: {str(exchange_info)[:200]}", kind="exchangeInfo")
    return {
        entry["symbol"].upper(): entry["onboardDate"] if isinstance(entry.get("onboardDate"), int) else 0
        for entry in symbols
        if isinstance(entry, dict) and isinstance(entry.get("symbol"), str)
    }
