"""``manage.py klines_status``: per symbol, the oldest and newest stored kline and any gaps; exit 1 on a gap."""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from klines.binance.intervals import INTERVAL_SECONDS
from klines.ingest.status import symbol_status
from klines.management.stream_options import add_stream_options, stream_options
from klines.store.exchange_gaps import exchange_gaps
from klines.store.history import oldest_open_time
from klines.store.reads import newest_open_time, open_times_between


def _moment(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"{raw!r} is not an ISO 8601 date-time such as 2025-11-25T10:00 (UTC by default)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Print, per symbol, the oldest and newest stored kline and the gaps in the last 24 h (or --since/--until). "
        "Exits 1 when a symbol has a gap or nothing stored: usable as a cron or health check."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_stream_options(parser)
        parser.add_argument("--hours", type=float, default=24.0, help="window length before --until (default 24)")
        parser.add_argument("--since", help="window start, ISO 8601 (default: --until minus --hours)")
        parser.add_argument("--until", help="window end, ISO 8601 (default: now)")
        parser.add_argument(
            "--grace",
            type=float,
            default=10.0,
            help="seconds after its close before a kline counts as missing (default 10)",
        )

    def handle(
        self,
        *,
        symbols: str | None,
        interval: str | None,
        hours: float,
        since: str | None,
        until: str | None,
        grace: float,
        **options: Any,
    ) -> None:
        symbol_list, intervals = stream_options(symbols, interval)
        if hours <= 0 or grace < 0:
            raise CommandError("--hours must be positive and --grace not negative")
        end = _moment(until) if until else datetime.now(UTC)
        start = _moment(since) if since else end - timedelta(hours=hours)
        if start >= end:
            raise CommandError("--since must be before --until")

        self.stdout.write(f"klines {','.join(intervals)} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
        unhealthy = []
        for symbol, interval in ((s, i) for s in symbol_list for i in intervals):
            status = symbol_status(
                symbol,
                interval,
                open_times=open_times_between(symbol, interval, start, end),
                newest=newest_open_time(symbol, interval),
                until=end,
                interval_ms=INTERVAL_SECONDS[interval] * 1000,
                grace_ms=round(grace * 1000),
                now=datetime.now(UTC),
                oldest=oldest_open_time(symbol, interval),
                exchange_gaps=exchange_gaps(symbol, interval),
            )
            self.stdout.write(status.line())
            if not status.healthy:
                unhealthy.append(status.symbol if len(intervals) == 1 else f"{status.symbol} {interval}")
        if unhealthy:
            streams = len(symbol_list) * len(intervals)
            what = "symbols" if len(intervals) == 1 else "symbol-intervals"
            raise CommandError(f"gaps in {len(unhealthy)} of {streams} {what}: {', '.join(unhealthy)}")
        if len(intervals) == 1:
            self.stdout.write(f"no gaps in {len(symbol_list)} symbols")
        else:
            self.stdout.write(f"no gaps in {len(symbol_list)} symbols x {len(intervals)} intervals")
