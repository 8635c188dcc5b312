"""The ingest's slice of the configuration (built by ``binancews.config``; defaults live there)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class IngestSettings:
    ws_url: str
    rest_url: str
    source: str  # the exchange whose klines the record holds: claimed before any request to it
    symbols: tuple[str, ...]  # configured; empty with KLINE_SYMBOLS=all (then the exchange's listing decides)
    all_symbols: bool
    symbols_refresh_seconds: float
    intervals: tuple[str, ...]
    streams_per_connection: int
    silence_seconds: float
    reconnect_max_seconds: float
    stats_seconds: float
    queue_size: int
    rest_weight_per_minute: int
    repair_seconds: float  # between the end of one hole scan of the whole record and the start of the next
    history: int  # closed klines a first start stores per (symbol, interval) (KLINE_HISTORY); 0: off
    mark_prices: bool  # record mark-price klines and funding rates (KLINE_MARK_PRICES)
    metrics_port: int  # 0: no metrics endpoint
    metrics_address: str

    @property
    def streams(self) -> tuple[tuple[str, str], ...]:
        """Every (symbol, interval) recorded, symbol by symbol (a symbol's intervals share a connection)."""
        return tuple((symbol, interval) for symbol in self.symbols for interval in self.intervals)
