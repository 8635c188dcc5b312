"""``manage.py klines_status``: per symbol, the newest stored kline and any gaps; exit 1 on a gap."""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from klines.binance.intervals import INTERVAL_SECONDS
from klines.ingest.status import symbol_status
from klines.management.stream_options import add_stream_options, stream_options
from klines.store.reads import newest_open_time, open_times_between


def _moment(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"{raw!r} is not an ISO 8601 date-time such as 2025-11-25T10:00 (UTC by default)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Print, per symbol, the newest stored kline and the gaps in the last 24 h (or --since/--until). "
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
        symbol_list, interval = stream_options(symbols, interval)
        if hours <= 0 or grace < 0:
            raise CommandError("--hours must be positive and --grace not negative")
        end = _moment(until) if until else datetime.now(UTC)
        start = _moment(since) if since else end - timedelta(hours=hours)
        if start >= end:
            raise CommandError("--since must be before --until")

        self.stdout.write(f"klines {interval} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
        unhealthy = []
        for symbol in symbol_list:
            status = symbol_status(
                symbol,
                interval,
                open_times=open_times_between(symbol, interval, start, end),
                newest=newest_open_time(symbol, interval),
                until=end,
                interval_ms=INTERVAL_SECONDS[interval] * 1000,
                grace_ms=round(grace * 1000),
            )
            self.stdout.write(status.line())
            if not status.healthy:
                unhealthy.append(status.symbol)
        if unhealthy:
            raise CommandError(f"gaps in {len(unhealthy)} of {len(symbol_list)} symbols: {', '.join(unhealthy)}")
        self.stdout.write(f"no gaps in {len(symbol_list)} symbols")
