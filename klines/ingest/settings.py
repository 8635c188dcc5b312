"""The ingest's slice of the configuration (built by ``binancews.config``; defaults live there)."""

from __future__ import annotations

from dataclasses import dataclass

from klines.binance.intervals import interval_ms


@dataclass(frozen=True, kw_only=True)
class IngestSettings:
    ws_url: str
    rest_url: str
    symbols: tuple[str, ...]
    interval: str
    streams_per_connection: int
    silence_seconds: float
    reconnect_max_seconds: float
    stats_seconds: float
    queue_size: int
    rest_weight_per_minute: int

    @property
    def interval_ms(self) -> int:
        return interval_ms(self.interval)
