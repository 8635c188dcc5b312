"""``GET /metrics``: the serving process's Prometheus metrics (``prometheus_client``), for allowed addresses only.

Counters are moved where the events happen (the senders, the consumers, the
feed); the number of connected clients and whether the channel layer answers
are read when Prometheus scrapes. Each daphne process exposes its own.

The feed imports this module for its counters, so this one never imports the
feed: the feed registers how to count its connections
(:func:`count_connections_with`), and a scrape calls that.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from klines.serving.metrics_access import address_allowed
from klines.serving.settings import serving_settings

disable_created_metrics()  # no *_created series: half the series count for nothing an operator reads

ROOT = "/"
STREAMS = "streams"  # the Binance-protocol streams (/ws, /stream)

CONNECTED = Gauge("binancews_connected_clients", "Websocket clients connected to this process.", ["endpoint"])
FRAMES_SENT = Counter("binancews_frames_sent", "Frames sent to websocket clients.", ["endpoint"])
CLIENTS_CLOSED = Counter(
    "binancews_clients_closed", "Clients closed by the server: slow (stopped reading) or abusive.", ["reason"]
)
FANOUT_SECONDS = Histogram(
    "binancews_fanout_seconds",
    "From a close stored (or an update received) by the ingest to the last of its frames sent, per process.",
    ["event"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_SECONDS = Histogram("binancews_reconcile_read_seconds", "The feed's database reads and their latency.")
LAYER_MESSAGES = Counter("binancews_layer_messages", "Channel-layer messages received from the ingest.")
DATABASE_UP = Gauge("binancews_database_up", "1 when the feed's last database read succeeded.")
LAYER_UP = Gauge("binancews_channel_layer_up", "1 when the channel layer answers (always 1 in memory).")


def _no_connections() -> dict[str, int]:
    return {ROOT: 0, STREAMS: 0}


_connection_counts: Callable[[], dict[str, int]] = _no_connections  # until the feed registers its own


def count_connections_with(counts: Callable[[], dict[str, int]]) -> None:
    """Make each scrape read the connected clients, by endpoint label, from ``counts`` (the feed's)."""
    global _connection_counts
    _connection_counts = counts


def _refresh_gauges() -> None:
    from klines.serving.health import channel_layer_status

    for endpoint, count in _connection_counts().items():
        CONNECTED.labels(endpoint).set(count)
    LAYER_UP.set(1 if channel_layer_status(serving_settings().redis_url)["ok"] else 0)


for _endpoint in (ROOT, STREAMS):  # every series from the start, at 0, so rate() and alerts see them
    CONNECTED.labels(_endpoint)
    FRAMES_SENT.labels(_endpoint)
for _reason in ("slow", "abusive"):
    CLIENTS_CLOSED.labels(_reason)
for _event in ("close", "update"):
    FANOUT_SECONDS.labels(_event)


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition; 403 for an address outside ``METRICS_ALLOWED_IPS``."""
    if not address_allowed(request.META.get("REMOTE_ADDR"), serving_settings().metrics_allowed_ips):
        return HttpResponseForbidden("metrics are not served to this address\n", content_type="text/plain")
    _refresh_gauges()
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
