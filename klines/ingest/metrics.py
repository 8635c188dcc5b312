"""The ingest's Prometheus metrics on ``KLINE_METRICS_PORT``: read from the service's own counters at scrape time.

Nothing is counted twice: the collector turns :meth:`IngestService.counters`,
the writer queue, the REST client's weight and waits, and the per (symbol,
interval) lag and holes into metric families when Prometheus scrapes.
Series: 17 fixed, plus the malformed kinds seen (a handful), plus two per
(symbol, interval): 2,017 at 500 symbols x 2 intervals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from klines.binance.intervals import interval_ms
from klines.binance.parse import datetime_to_ms

if TYPE_CHECKING:
    from klines.ingest.service import IngestService

logger = logging.getLogger(__name__)

_COUNTERS = (
    ("messages", "Stream messages read."),
    ("stored", "Closed klines stored."),
    ("backfilled", "Closed klines fetched from REST."),
    ("duplicates", "Klines already stored, skipped."),
    ("unknown", "Stream messages for streams not recorded."),
    ("reconnects", "Stream reconnects."),
    ("dropped", "Klines dropped from a full writer queue (backfilled later)."),
    ("rejected", "Klines the database refused."),
    ("pongs_skipped", "Pings left unanswered to stay under Binance's message rate."),
    ("rate_limited", "REST 429/418 answers waited out."),
    ("funding_streamed", "Funding rates recorded from the mark-price stream."),
    ("derivatives_repaired", "Mark-price klines and funding rates fetched for holes."),
)


class IngestCollector(Collector):
    def __init__(self, service: IngestService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service = self.service
        counters = service.counters()
        for name, text in _COUNTERS:
            yield CounterMetricFamily(f"binancews_ingest_{name}", text, value=getattr(counters, name))
        malformed = CounterMetricFamily("binancews_ingest_malformed", "Malformed stream messages.", labels=["kind"])
        for kind, count in sorted(counters.malformed_kinds.items()):
            malformed.add_metric([kind], count)
        yield malformed
        corrected = CounterMetricFamily(
            "binancews_ingest_funding_corrected",
            "Funding rates from the mark-price stream that REST corrected, by what differed.",
            labels=["field"],
        )
        for part in ("rate", "mark_price", "removed"):
            corrected.add_metric([part], counters.funding_corrected.get(part, 0))
        yield corrected
        yield GaugeMetricFamily("binancews_ingest_queue_depth", "Klines in the writer queue.", value=counters.queued)
        yield CounterMetricFamily(
            "binancews_ingest_rest_weight", "REST request weight spent.", value=service.rest.pacer.total_spent
        )
        yield from self._per_stream()

    def _per_stream(self) -> Iterator[Metric]:
        service = self.service
        lag = GaugeMetricFamily(
            "binancews_ingest_lag_seconds",
            "Seconds from the close of the newest stored kline to now (exchange clock).",
            labels=["symbol", "interval"],
        )
        holes = CounterMetricFamily(
            "binancews_ingest_holes", "Times the stream skipped klines (backfilled).", labels=["symbol", "interval"]
        )
        newest = dict(service.writer.newest)
        now_ms = service.exchange_now_ms()
        for interval in service.settings.intervals:
            found = dict(service.watches[interval].holes)
            for symbol in service.symbols:
                opened = newest.get((symbol.upper(), interval))
                if opened is not None:
                    lag.add_metric(
                        [symbol.upper(), interval], (now_ms - datetime_to_ms(opened) - interval_ms(interval)) / 1000
                    )
                holes.add_metric([symbol.upper(), interval], found.get(symbol.upper(), found.get(symbol.lower(), 0)))
        yield lag
        yield holes


def serve_metrics(service: IngestService, *, port: int, address: str = "127.0.0.1") -> None:
    """Serve the ingest's metrics on ``address:port`` (a daemon thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IngestCollector(service))
    start_http_server(port, addr=address, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", address, port)
