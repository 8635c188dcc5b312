"""``GET /healthz``: is the database reachable, is the channel layer, is every symbol fresh?"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.http import JsonResponse

from klines.binance.intervals import INTERVAL_SECONDS
from klines.serving.settings import ServingSettings, serving_settings
from klines.store.reads import last_klines

logger = logging.getLogger(__name__)


def symbol_freshness(
    newest: dict[str, datetime | None], *, now: datetime, interval_seconds: int, grace_seconds: float
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Per symbol: newest open time, its age and whether it is stale; and whether all are fresh.

    A healthy stream's newest closed kline opened between one and two intervals
    ago; older than two intervals plus the grace period means closes are missing.
    A kline that opens in the future (simulated, or a clock far off) is flagged
    ``future_dated`` and is not fresh.
    """
    limit = timedelta(seconds=2 * interval_seconds + grace_seconds)
    report: dict[str, dict[str, Any]] = {}
    for symbol, open_time in newest.items():
        age = (now - open_time) if open_time else None
        future = age is not None and age < timedelta(0)
        report[symbol] = {
            "newest_open_time": open_time.isoformat() if open_time else None,
            "age_seconds": round(age.total_seconds(), 1) if age is not None else None,
            "stale": age is None or age > limit,
        }
        if future:
            report[symbol]["future_dated"] = True
    healthy = not any(entry["stale"] or entry.get("future_dated") for entry in report.values())
    return report, healthy


def _checked_symbols(serving: ServingSettings) -> tuple[str, ...]:
    """Every recorded symbol; with ``KLINE_SYMBOLS=all`` (hundreds), those ``/`` shows: ``klines_status`` checks all."""
    return serving.recorded_symbols if serving.recorded_symbols is not None else serving.symbols


def _database_newest(serving: ServingSettings, interval: str) -> dict[str, datetime | None]:
    newest = {}
    for symbol in _checked_symbols(serving):
        rows = last_klines(symbol, interval, 1)
        newest[symbol.upper()] = rows[0].open_time if rows else None
    return newest


@functools.lru_cache(maxsize=4)
def _redis_client(redis_url: str) -> Any:
    """One client, so one pooled connection, per URL and process: each probe or scrape reuses it
    (a client per call opened a connection per ``/metrics`` scrape). It reconnects after a Redis restart."""
    import redis

    return redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)


def channel_layer_status(redis_url: str) -> dict[str, Any]:
    if not redis_url:
        return {"ok": True, "backend": "in-memory (single process; clients get closes by reconciling)"}
    import redis

    try:
        _redis_client(redis_url).ping()
    except redis.RedisError as exc:  # the text can name hosts and ports: it goes to the log, not the body
        logger.warning("healthz: channel layer unreachable: %s", exc)
        return {"ok": False, "backend": "redis"}
    return {"ok": True, "backend": "redis"}


def healthz(request) -> JsonResponse:
    """200 when the database answers and every symbol is fresh at every recorded interval, else 503.

    ``symbols`` reports the first interval (the default of ``/``); with several
    intervals, ``intervals`` reports each. A dead channel layer is reported
    ("degraded") but is not fatal: clients still get new closes by reconciling
    with the database.
    """
    serving = serving_settings()
    layer = channel_layer_status(serving.redis_url)
    try:
        newest = {interval: _database_newest(serving, interval) for interval in serving.intervals}
    except Exception as exc:  # any driver error means "not reachable"; its text goes to the log only
        logger.warning("healthz: database unreachable: %s", exc)
        body = {"status": "unhealthy", "database": {"ok": False}, "channel_layer": layer}
        return JsonResponse(body, status=503)
    now = datetime.now(UTC)
    reports = {}
    fresh = True
    for interval, stored in newest.items():
        reports[interval], interval_fresh = symbol_freshness(
            stored, now=now, interval_seconds=INTERVAL_SECONDS[interval], grace_seconds=serving.health_grace_seconds
        )
        fresh = fresh and interval_fresh
    future = any(entry.get("future_dated") for report in reports.values() for entry in report.values())
    status = "future-dated" if future else "stale" if not fresh else "ok" if layer["ok"] else "degraded"
    body: dict[str, Any] = {
        "status": status,
        "database": {"ok": True},
        "channel_layer": layer,
        "symbols": reports[serving.interval],
    }
    if len(reports) > 1:
        body["intervals"] = reports
    return JsonResponse(body, status=200 if fresh else 503)
