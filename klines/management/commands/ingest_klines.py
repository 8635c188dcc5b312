"""``manage.py ingest_klines``: store every closed kline from Binance's combined stream."""

from __future__ import annotations

import signal
import threading
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from klines.binance.parse import ClosedKline
from klines.events import publish_closed
from klines.ingest.service import IngestService, IngestSettings
from klines.management.stream_options import add_stream_options, stream_options


class Command(BaseCommand):
    help = (
        "Read Binance's kline stream and store every closed kline in MongoDB, backfilling "
        "what a disconnect missed from REST (Ctrl-C to stop)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_stream_options(parser)

    def handle(self, *, symbols: str | None, interval: str | None, **options: Any) -> None:
        symbol_list, interval = stream_options(symbols, interval)

        service = IngestService(
            IngestSettings(
                ws_url=settings.BINANCE_WS_URL,
                rest_url=settings.BINANCE_REST_URL,
                symbols=symbol_list,
                interval=interval,
                streams_per_connection=settings.KLINE_STREAMS_PER_CONNECTION,
                silence_seconds=settings.KLINE_SILENCE_SECONDS,
                reconnect_max_seconds=settings.KLINE_RECONNECT_MAX_SECONDS,
                stats_seconds=settings.KLINE_STATS_SECONDS,
                queue_size=settings.KLINE_QUEUE_SIZE,
                rest_weight_per_minute=settings.BINANCE_REST_WEIGHT_PER_MINUTE,
            ),
            on_stored=self._stored,
        )
        database = settings.DATABASES["default"]
        for connection in service.connections:
            self.stdout.write(f"ingesting {connection.url}")
        self.stdout.write(
            f"  into MongoDB database {database['NAME']!r}, collection {settings.MONGO_COLLECTION!r}\n"
            f"  backfilling from {settings.BINANCE_REST_URL}/fapi/v1/klines"
        )
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            left = service.run(stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        counters = service.counters()
        self.stdout.write(
            f"stopped: {counters.messages} messages, {counters.stored} klines stored, "
            f"{counters.duplicates} duplicates skipped, {counters.malformed} malformed, "
            f"{counters.reconnects} reconnects, {left} left unwritten"
        )

    def _stored(self, klines: list[ClosedKline]) -> None:
        publish_closed(*klines)
        for kline in klines:
            self.stdout.write(f"stored {kline.symbol} {kline.open_time:%Y-%m-%d %H:%M} UTC close {kline.close}")
