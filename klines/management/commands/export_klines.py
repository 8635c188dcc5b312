"""``manage.py export_klines``: write the stored klines of a range to files (CSV zips, Parquet, freqtrade)."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from klines.binance.intervals import interval_ms
from klines.binance.names import parse_intervals, parse_symbols
from klines.binance.parse import datetime_to_ms, ms_to_datetime
from klines.export import freqtrade
from klines.export.plan import PairExport
from klines.export.run import FORMATS, FileExists, export_pair, writer_for
from klines.history.plan import align_up, expected
from klines.management.commands.backfill_klines import moment
from klines.management.stream_options import add_range_options
from klines.store.exchange import exchange_info, listed_symbols
from klines.store.reads import newest_open_time


class Job(NamedTuple):
    """One (symbol, interval) to export over ``[start, end)``."""

    fmt: str
    symbol: str
    interval: str
    start: datetime
    end: datetime
    pair: str | None  # freqtrade's pair name

    def paths(self, out: Path) -> list[Path]:
        """The files this job would write under ``out``."""
        return writer_for(self.fmt, self.symbol, self.interval, out, pair=self.pair, start=self.start, end=self.end)[0]


def span(symbol: str, interval: str, since: datetime, until: datetime | None) -> tuple[datetime, datetime]:
    """``[start, end)`` on the interval's boundaries; without ``until``, up to the newest stored kline."""
    length = interval_ms(interval)
    start = ms_to_datetime(align_up(datetime_to_ms(since), length))
    if until is not None:
        return start, max(start, ms_to_datetime(align_up(datetime_to_ms(until), length)))
    newest = newest_open_time(symbol, interval)
    return start, start if newest is None else max(start, newest + timedelta(milliseconds=length))


class Command(BaseCommand):
    help = (
        "Write the stored klines from --since (to --until or the newest stored) to files under --out: "
        "csv (Binance's archive layout: zips and .CHECKSUM files), parquet (one typed file per symbol and "
        "interval) or freqtrade (its futures data directory, for backtesting --datadir). Holes are named, "
        "not filled; existing files are kept unless --force."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_range_options(parser, until_default="after the newest stored")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt", help="what to write")
        parser.add_argument("--out", required=True, help="directory to write into (created if missing)")
        parser.add_argument("--force", action="store_true", help="overwrite files that exist")
        parser.add_argument("--quiet", action="store_true", help="no progress; only the summary")

    def handle(
        self,
        *,
        since: str,
        until: str | None,
        symbols: str | None,
        intervals: str | None,
        fmt: str,
        out: str,
        force: bool,
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
            if (symbols or "").strip().lower() == "all":
                wanted_symbols = listed_symbols()
                if not wanted_symbols:
                    raise CommandError("--symbols all: no exchangeInfo is kept yet (run the ingest once); name them")
            elif symbols:
                wanted_symbols = parse_symbols(symbols, variable="--symbols")
            else:
                wanted_symbols = config.symbols
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if not wanted_symbols:
            raise CommandError("--symbols: none given and KLINE_SYMBOLS is 'all'; name them or say --symbols all")
        directory = Path(out)
        if directory.exists() and not directory.is_dir():
            raise CommandError(f"--out {out}: exists and is not a directory")
        known = freqtrade.assets(exchange_info()) if fmt == "freqtrade" else {}
        jobs = []
        for symbol in (s.upper() for s in wanted_symbols):
            try:
                pair = freqtrade.pair_of(symbol, known) if fmt == "freqtrade" else None
            except ValueError as exc:
                raise CommandError(f"--format freqtrade: {exc}") from None
            jobs.extend(
                Job(fmt, symbol, interval, *span(symbol, interval, start, end), pair) for interval in wanted_intervals
            )
        if not force:  # before any file is written
            taken = [p for job in jobs for p in job.paths(directory) if p.exists()]
            if taken:
                more = f" and {len(taken) - 3} more" if len(taken) > 3 else ""
                raise CommandError(f"{', '.join(map(str, taken[:3]))}{more} exists; use --force to overwrite")
        results = []
        debug, settings.DEBUG = settings.DEBUG, False  # DEBUG's query log would keep every read of a long range
        try:
            for job in jobs:
                results.append(self._pair(job, directory, force, quiet))
        except KeyboardInterrupt:
            raise CommandError("interrupted; the files being written were removed, run it again") from None
        finally:
            settings.DEBUG = debug
        self.stdout.write("summary:")
        for result in results:
            for line in result.lines():
                self.stdout.write(line)

    def _pair(self, job: Job, out: Path, force: bool, quiet: bool) -> PairExport:
        fmt, symbol, interval, start, end, pair = job
        length = interval_ms(interval)
        total = expected(start, end, length)
        advance = lambda n: None  # noqa: E731
        bar = None
        if not quiet and sys.stdout.isatty() and self.stdout.isatty():
            bar = tqdm(total=total, desc=f"{symbol} {interval}", unit=" klines", unit_scale=True, dynamic_ncols=True)
            advance = bar.update
        elif not quiet:
            self.stdout.write(
                f"{symbol} {interval}: from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC ({total} klines)"
            )
        try:
            return export_pair(fmt, symbol, interval, start, end, out, force=force, pair=pair, advance=advance)
        except FileExists as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"--out {out}: {exc}") from None
        finally:
            if bar is not None:
                bar.close()
