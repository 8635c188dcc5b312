"""``manage.py ingest_klines``: store every closed kline from Binance's combined stream."""

from __future__ import annotations

import signal
import threading
from argparse import ArgumentParser
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from pymongo.errors import PyMongoError

from klines.binance.parse import ClosedKline
from klines.events import publish_closed, publish_updates
from klines.ingest.claim import claim_before_start
from klines.ingest.metrics import serve_metrics
from klines.ingest.service import IngestFailed, IngestService
from klines.management.stream_options import add_stream_options, stream_options
from klines.models import KLINES_COLLECTION
from klines.store.exchange import RecordClaimedError
from klines.store.unique_index import UniqueIndexMissing, require_unique_index


def _require_unique_index() -> None:
    """Stop before any network use if the collection lacks its unique index; if the database is not up
    yet, the claim checks again once it answers (:mod:`klines.ingest.claim`), still before any network use."""
    try:
        require_unique_index()
    except UniqueIndexMissing as exc:
        raise CommandError(str(exc)) from None
    except (DatabaseError, PyMongoError):
        pass


class Command(BaseCommand):
    help = (
        "Read Binance's kline stream and store every closed kline in MongoDB, backfilling "
        "what a disconnect missed from REST (Ctrl-C to stop)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_stream_options(parser)
        parser.add_argument(
            "--metrics-port",
            type=int,
            help="serve Prometheus metrics on this port (default: KLINE_METRICS_PORT; 0 = off)",
        )

    def handle(
        self,
        *,
        symbols: str | None,
        interval: str | None,
        metrics_port: int | None = None,
        verbosity: int = 1,
        **options: Any,
    ) -> None:
        # A line per stored kline floods the output (hundreds a minute with KLINE_SYMBOLS=all): only with -v 2.
        self._each_kline = verbosity >= 2
        if symbols is None and settings.BINANCEWS.all_symbols:
            symbol_list, intervals = (), stream_options("btcusdt", interval)[1]  # the listing decides the symbols
        else:
            symbol_list, intervals = stream_options(symbols, interval)
        ingest = replace(
            settings.BINANCEWS.ingest, symbols=symbol_list, intervals=intervals, all_symbols=not symbol_list
        )
        _require_unique_index()
        # In-progress updates reach other processes only through a shared layer (Redis).
        relay = publish_updates if settings.BINANCEWS.redis_url else None
        service = IngestService(
            ingest, on_stored=lambda klines: self._stored(klines, service.exchange_now_ms()), relay=relay
        )
        port = ingest.metrics_port if metrics_port is None else metrics_port
        if port:
            serve_metrics(service, port=port, address=ingest.metrics_address)
            self.stdout.write(f"metrics on http://{ingest.metrics_address}:{port}/metrics")
        database = settings.DATABASES["default"]
        for connection in service.connections:
            self.stdout.write(f"ingesting {connection.url}")
        for connection in service.mark_connections:
            self.stdout.write(f"funding rates from {connection.url}")
        if ingest.all_symbols:
            self.stdout.write(
                f"ingesting every trading perpetual {ingest.rest_url}/fapi/v1/exchangeInfo lists, "
                f"at {', '.join(intervals)} (re-read every {ingest.symbols_refresh_seconds:g} s)"
            )
        self.stdout.write(
            f"  into MongoDB database {database['NAME']!r}, collection {KLINES_COLLECTION!r}\n"
            f"  backfilling from {ingest.rest_url}/fapi/v1/klines\n"
            f"  a stats line every {ingest.stats_seconds:g} s in the log"
            f"{'' if self._each_kline else '; a line per stored kline with -v 2'}"
        )
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if not claim_before_start(ingest.source, rest_url=ingest.rest_url, stop=stop):
                self._stopped(service, 0)
                return
            left = service.run(stop)
        except (RecordClaimedError, UniqueIndexMissing) as exc:
            raise CommandError(str(exc)) from None
        except IngestFailed as exc:
            # Exit non-zero: the platform restarts the ingest, whose start-up backfill refills the hole.
            self._stopped(service, service.writer.pending)
            raise CommandError(f"ingest failed: {exc}") from exc
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self._stopped(service, left)

    def _stopped(self, service: IngestService, left: int) -> None:
        counters = service.counters()
        self.stdout.write(
            f"stopped: {counters.messages} messages, {counters.stored} klines stored, "
            f"{counters.duplicates} duplicates skipped, {counters.malformed} malformed, "
            f"{counters.rejected} rejected, {counters.reconnects} reconnects, {left} left unwritten"
        )

    def _stored(self, klines: list[ClosedKline], exchange_ms: int) -> None:
        publish_closed(*klines, exchange_ms=exchange_ms)  # by the exchange's clock, a backfill's are history
        if not self._each_kline:
            return
        for kline in klines:
            self.stdout.write(f"stored {kline.symbol} {kline.open_time:%Y-%m-%d %H:%M} UTC close {kline.close}")
