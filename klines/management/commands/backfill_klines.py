"""``manage.py backfill_klines``: fill the record over a date range from Binance's archive files and REST."""

from __future__ import annotations

import sys
import threading
from argparse import ArgumentParser
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from klines.binance.listing import listing_dates, tradable_perpetuals
from klines.binance.names import parse_intervals, parse_symbols
from klines.binance.parse import MalformedMessage
from klines.binance.rest import USER_AGENT, BinanceRest, RestError
from klines.history.download import scratch
from klines.history.plan import PairSummary, expected
from klines.history.run import PairBackfill, Sources
from klines.management.stream_options import add_range_options
from klines.store.exchange import RecordClaimedError, claim_record


def moment(raw: str, option: str) -> datetime:
    """A date (``2024-01-01``) or ISO 8601 date-time, UTC unless it says otherwise."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"{option}: {raw!r} is not a date such as 2024-01-01 or 2024-01-01T12:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Fill the stored klines from --since (to --until or now) from Binance's public archive "
        "(BINANCE_ARCHIVE_URL: monthly, then daily zips, each checked against its SHA-256) and REST pages "
        "for the rest. Resumable: run it again after an interruption and it continues where it stopped."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_range_options(parser, until_default="the last closed kline")
        parser.add_argument("--quiet", action="store_true", help="no progress; only the summary")

    def handle(
        self,
        *,
        since: str,
        until: str | None,
        symbols: str | None,
        intervals: str | None,
        quiet: bool,
        **options: Any,
    ) -> None:
        config = settings.BINANCEWS
        start = moment(since, "--since")
        end = moment(until, "--until") if until else None
        if end is not None and start >= end:
            raise CommandError(f"--since {since} is not before --until {until}")
        try:
            wanted_intervals = parse_intervals(intervals, variable="--intervals") if intervals else config.intervals
            wanted = None if (symbols or "").strip().lower() == "all" else symbols
            wanted_symbols = parse_symbols(wanted, variable="--symbols") if wanted else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        # DEBUG's query log keeps a deep copy and the repr of every insert_many (megabytes per batch, up to
        # 9,000 of them): a third of the time and unbounded memory on a long range. A bulk import logs none.
        debug, settings.DEBUG = settings.DEBUG, False
        try:
            self._run(start, end, wanted_symbols, wanted_intervals, symbols, quiet)
        finally:
            settings.DEBUG = debug

    def _run(
        self,
        start: datetime,
        end: datetime | None,
        wanted_symbols: tuple[str, ...] | None,
        wanted_intervals: tuple[str, ...],
        symbols: str | None,
        quiet: bool,
    ) -> None:
        config = settings.BINANCEWS
        rest = BinanceRest(
            config.binance_rest_url, weight_per_minute=config.rest_weight_per_minute, stop=threading.Event()
        )
        try:
            try:  # before any request: klines of two exchanges never mix
                claim_record(config.source, rest_url=config.binance_rest_url)
            except RecordClaimedError as exc:
                raise CommandError(str(exc)) from None
            listed, trading, server_ms = self._listing(rest)
            if wanted_symbols is None:
                wanted_symbols = trading if symbols else config.symbols or trading
            unknown = [s.upper() for s in wanted_symbols if s.upper() not in listed]
            if unknown:
                raise CommandError(
                    f"unknown symbol {', '.join(unknown)}: not listed by {config.binance_rest_url}/fapi/v1/exchangeInfo"
                )
            with scratch() as directory, httpx.Client(timeout=60.0, headers={"User-Agent": USER_AGENT}) as client:
                sources = Sources(
                    rest=rest, archive_url=config.binance_archive_url, client=client, directory=Path(directory)
                )
                summaries = []
                for symbol in wanted_symbols:
                    for interval in wanted_intervals:
                        summaries.append(
                            self._pair(symbol, interval, start, end, listed[symbol.upper()], sources, server_ms, quiet)
                        )
        except KeyboardInterrupt:
            raise CommandError("interrupted; run the same command again to continue where it stopped") from None
        finally:
            rest.close()
        self.stdout.write("summary:")
        for summary in summaries:
            for line in summary.lines():
                self.stdout.write(line)

    def _listing(self, rest: BinanceRest) -> tuple[dict[str, int], tuple[str, ...], int]:
        """Listing dates of every contract, the trading perpetuals, and the exchange's clock."""
        try:
            info = rest.get("/fapi/v1/exchangeInfo", {}, weight=1)
            server_ms = rest.server_time_ms()
            return listing_dates(info), tradable_perpetuals(info), server_ms
        except (RestError, MalformedMessage) as exc:
            raise CommandError(f"cannot read the listing from {rest.base_url}: {exc}") from None

    def _pair(
        self,
        symbol: str,
        interval: str,
        since: datetime,
        until: datetime | None,
        onboard_ms: int,
        sources: Sources,
        server_ms: int,
        quiet: bool,
    ) -> PairSummary:
        bar = None
        note = (
            (lambda text: None) if quiet else (lambda text: self.stdout.write(f"{symbol.upper()} {interval}: {text}"))
        )
        pair = PairBackfill(symbol, interval, sources=sources, server_ms=server_ms)
        start, end = pair.plan(since, until, onboard_ms=onboard_ms)
        if not quiet and sys.stdout.isatty() and self.stdout.isatty():
            bar = tqdm(
                total=expected(start, end, pair.interval_ms),
                desc=f"{symbol.upper()} {interval}",
                unit=" klines",
                unit_scale=True,
                dynamic_ncols=True,
            )
            pair.advance, note = bar.update, bar.write
        pair.note = note
        if not quiet:
            count = expected(start, end, pair.interval_ms)
            note(f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC ({count} klines)")
        try:
            return pair.run(start, end)
        finally:
            if bar is not None:
                bar.close()
