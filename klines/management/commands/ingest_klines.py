"""``manage.py ingest_klines``: store every closed kline from Binance's combined stream."""

from __future__ import annotations

import signal
import threading
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from binancews.config import ConfigError, parse_interval, parse_symbols
from klines.binance import ClosedKline, combined_stream_url
from klines.events import publish_closed
from klines.ingest import KlineIngestor
from klines.stream import run_stream
from klines.writer import BatchWriter


class Command(BaseCommand):
    help = "Read Binance's kline stream and store every closed kline in MongoDB (Ctrl-C to stop)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--symbols", help="comma-separated symbols (default: KLINE_SYMBOLS)")
        parser.add_argument("--interval", help="kline interval, e.g. 1m (default: KLINE_INTERVAL)")

    def handle(self, *, symbols: str | None, interval: str | None, **options: Any) -> None:
        try:
            symbol_list = parse_symbols(symbols, variable="--symbols") if symbols else settings.KLINE_SYMBOLS
            interval = parse_interval(interval, variable="--interval") if interval else settings.KLINE_INTERVAL
        except ConfigError as exc:
            raise CommandError(str(exc)) from None

        url = combined_stream_url(settings.BINANCE_WS_URL, symbol_list, interval)
        database = settings.DATABASES["default"]
        self.stdout.write(
            f"ingesting {url}\n  into MongoDB database {database['NAME']!r}, collection {settings.MONGO_COLLECTION!r}"
        )
        # Closes are stored in batches by a writer thread, so a burst of them costs a few round trips.
        writer = BatchWriter(on_stored=self._stored, on_duplicates=self._duplicates)
        self.ingestor = ingestor = KlineIngestor(symbols=symbol_list, interval=interval, sink=writer.put)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        writer.start()
        try:
            run_stream(url, on_message=ingestor.handle_message, stop=stop)
        finally:
            writer.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        stats = ingestor.stats
        self.stdout.write(
            f"stopped: {stats.received} messages, {stats.stored} klines stored, "
            f"{stats.duplicates} duplicates skipped, {stats.malformed} malformed"
        )

    def _stored(self, klines: list[ClosedKline]) -> None:
        self.ingestor.stats.stored += len(klines)
        for kline in klines:
            self.stdout.write(f"stored {kline.symbol} {kline.open_time:%Y-%m-%d %H:%M} UTC close {kline.close}")
        publish_closed(*klines)

    def _duplicates(self, count: int) -> None:
        self.ingestor.stats.duplicates += count
