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


def klines_stored_since(moment: datetime, interval: str, symbols: Iterable[str], limit: int) -> list[Kline]:
    """Klines stored at or after ``moment`` for the given symbols, oldest stored first."""
    return list(
        Kline.objects.filter(
            stored_at__gte=moment, interval=interval, symbol__in=[s.upper() for s in symbols]
        ).order_by("stored_at")[:limit]
    )
