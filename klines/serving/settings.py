"""The serving processes' slice of the configuration (built by ``binancews.config``; defaults live there)."""

from __future__ import annotations

from dataclasses import dataclass, field

from klines.binance.intervals import INTERVAL_SECONDS


@dataclass(frozen=True, kw_only=True)
class ServingSettings:
    symbols: tuple[str, ...]  # what `/` sends on connect (FEED_SYMBOLS)
    recorded_symbols: tuple[str, ...] | None  # None: every trading perpetual (KLINE_SYMBOLS=all)
    intervals: tuple[str, ...]  # recorded; the first is the default of `/`
    timezone: str
    poll_seconds: float
    ws_max_pending_bytes: int
    ws_max_connections: int
    ws_allowed_origins: tuple[str, ...]
    health_grace_seconds: float
    metrics_allowed_ips: tuple[str, ...]  # who may read /metrics (addresses, CIDR ranges)
    blocks: bool  # history pages cut from encoded blocks, built by page reads and a sweep (klines/api/blocks.py)
    redis_url: str = field(repr=False)  # may hold a password

    @property
    def interval(self) -> str:
        """The interval `/` shows by default."""
        return self.intervals[0]

    @property
    def interval_seconds(self) -> int:
        return INTERVAL_SECONDS[self.interval]


def serving_settings() -> ServingSettings:
    """The running project's serving settings (Django's ``BINANCEWS`` setting)."""
    from django.conf import settings  # here, so the dataclass above stays free of Django

    return settings.BINANCEWS.serving
