"""Ranges the exchange has no klines for (no trading): remembered so the hole repair never refetches them."""

from __future__ import annotations

import contextlib
from datetime import datetime

from django.db import IntegrityError, connections, router

from klines.models import ExchangeGap
from klines.store import pipelines
from klines.store.records import utc


def exchange_gaps(symbol: str, interval: str) -> list[tuple[datetime, datetime]]:
    """``(first, last)`` open times of each range the exchange has no klines for, oldest first."""
    connection = connections[router.db_for_read(ExchangeGap)]
    collection = connection.get_collection(ExchangeGap._meta.db_table)
    rows = collection.aggregate(pipelines.exchange_gaps(symbol.upper(), interval), session=connection.session)
    return [(utc(row["first_open"]), utc(row["last_open"])) for row in rows]


def remember_exchange_gap(symbol: str, interval: str, first: datetime, last: datetime) -> None:
    """Record that the exchange has no klines of ``symbol`` opening from ``first`` to ``last`` (once)."""
    with contextlib.suppress(IntegrityError):  # another ingest (or an earlier scan) recorded it first
        ExchangeGap.objects.create(symbol=symbol.upper(), interval=interval, first_open=first, last_open=last)
