"""Storage: save closed klines idempotently and read the newest ones back."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError

from klines.binance import ClosedKline
from klines.models import Kline
from klines.payloads import HISTORY


def save_kline(kline: ClosedKline) -> Kline | None:
    """Store ``kline`` once; return the new row, or ``None`` if it was already stored."""
    try:
        return Kline.objects.create(**kline.as_fields())
    except IntegrityError:
        return None


def last_klines(symbol: str, interval: str, count: int = HISTORY) -> list[Kline]:
    """The newest ``count`` stored klines of one symbol, oldest first."""
    newest_first = Kline.objects.filter(symbol=symbol.upper(), interval=interval).order_by("-open_time")[:count]
    return list(reversed(newest_first))


def newest_open_time(symbol: str, interval: str) -> datetime | None:
    """Open time of the newest stored kline of one symbol, ``None`` if none is stored."""
    newest = Kline.objects.filter(symbol=symbol.upper(), interval=interval).order_by("-open_time")
    return newest.values_list("open_time", flat=True).first()


def open_times_between(symbol: str, interval: str, since: datetime, until: datetime) -> list[datetime]:
    """Open times of one symbol's stored klines with ``since <= open time < until``, oldest first."""
    rows = Kline.objects.filter(symbol=symbol.upper(), interval=interval, open_time__gte=since, open_time__lt=until)
    return list(rows.order_by("open_time").values_list("open_time", flat=True))


def klines_stored_since(
    moment: datetime, interval: str, symbols: Iterable[str], limit: int
) -> tuple[list[Kline], int, datetime | None]:
    """Klines stored at or after ``moment`` for the given symbols, oldest stored first.

    Returns the matching rows, how many rows were read and the newest
    ``stored_at`` read (to resume from). The query uses only
    the ``stored_at`` index (some servers' planners skip an index when more
    filters are added); the few rows since the last look are filtered here.
    """
    wanted = {s.upper() for s in symbols}
    rows = list(Kline.objects.filter(stored_at__gte=moment).order_by("stored_at")[:limit])
    matching = [r for r in rows if r.symbol in wanted and r.interval == interval]
    return matching, len(rows), rows[-1].stored_at if rows else None


def newest_stored_at() -> datetime | None:
    """When the most recently stored kline (of any symbol) was stored."""
    return Kline.objects.order_by("-stored_at").values_list("stored_at", flat=True).first()
