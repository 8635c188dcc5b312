"""Storage: save closed klines idempotently and read the newest ones back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError

from binancews.config import INTERVAL_SECONDS
from klines import pipelines
from klines.binance import ClosedKline
from klines.models import Kline
from klines.payloads import HISTORY

RECENTLY_STORED = timedelta(minutes=1)  # newest_stored_at's first window


def save_kline(kline: ClosedKline) -> Kline | None:
    """Store ``kline`` once; return the new row, or ``None`` if it was already stored."""
    try:
        return Kline.objects.create(**kline.as_fields())
    except IntegrityError:
        return None


def save_klines(klines: Sequence[ClosedKline]) -> list[ClosedKline]:
    """Store many klines, each once, in as few round trips as possible; return the newly stored.

    One ``insert_many`` for the whole batch. It inserts in order and stops at
    the first duplicate: what came before is stored; the keys already stored
    are then looked up in one query and the rest inserted again. Only if
    another writer races us a second time are the last ones stored one by one.
    """
    pending = list(klines)
    try:
        _insert(pending)
        return pending
    except IntegrityError as exc:
        done = _inserted_before_duplicate(exc)
    stored, pending = pending[:done], pending[done:]
    existing = _stored_keys(pending)
    pending = [k for k in pending if k.key not in existing]
    try:
        _insert(pending)
        return stored + pending
    except IntegrityError as exc:
        done = _inserted_before_duplicate(exc)
    return stored + pending[:done] + [k for k in pending[done:] if save_kline(k) is not None]


def _insert(klines: list[ClosedKline]) -> None:
    if klines:
        Kline.objects.bulk_create([Kline(**k.as_fields()) for k in klines])


def _inserted_before_duplicate(exc: IntegrityError) -> int:
    """How many documents an ordered ``insert_many`` stored before its duplicate (0 if unknown)."""
    details = getattr(exc.__cause__, "details", None)  # pymongo's BulkWriteError
    errors = details.get("writeErrors") if isinstance(details, dict) else None
    if errors and len(errors) == 1 and isinstance(errors[0].get("index"), int):
        return errors[0]["index"]
    return 0


def _stored_keys(klines: list[ClosedKline]) -> set[tuple[str, str, datetime]]:
    """The keys among ``klines`` already stored: one indexed query per symbol (a ``$in`` on symbols is not)."""
    keys = set()
    for symbol, interval in sorted({(k.symbol, k.interval) for k in klines}):
        times = [k.open_time for k in klines if (k.symbol, k.interval) == (symbol, interval)]
        rows = Kline.objects.raw_aggregate(pipelines.stored_open_times(symbol, interval, times))
        keys.update((symbol, interval, row.open_time) for row in rows)
    return keys


def last_klines(symbol: str, interval: str, count: int = HISTORY, *, now: datetime | None = None) -> list[Kline]:
    """The newest ``count`` stored klines of one symbol, oldest first.

    Asks for the last ``2 * count`` intervals first and widens the window only
    if that holds fewer than ``count`` (see :func:`pipelines.lookback`).
    """
    first = timedelta(seconds=2 * count * INTERVAL_SECONDS.get(interval, 60))
    rows: list[Kline] = []
    for since in pipelines.lookback(now or datetime.now(UTC), first):
        rows = list(Kline.objects.raw_aggregate(pipelines.newest_first(symbol.upper(), interval, count, since=since)))
        if len(rows) >= count:
            break
    return rows[::-1]


def newest_open_time(symbol: str, interval: str) -> datetime | None:
    """Open time of the newest stored kline of one symbol, ``None`` if none is stored."""
    newest = last_klines(symbol, interval, 1)
    return newest[0].open_time if newest else None


def open_times_between(symbol: str, interval: str, since: datetime, until: datetime) -> list[datetime]:
    """Open times of one symbol's stored klines with ``since <= open time < until``, oldest first."""
    rows = Kline.objects.raw_aggregate(pipelines.open_times_between(symbol.upper(), interval, since, until))
    return [row.open_time for row in rows]


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
    rows = list(Kline.objects.raw_aggregate(pipelines.stored_since(moment, limit)))
    matching = [r for r in rows if r.symbol in wanted and r.interval == interval]
    return matching, len(rows), rows[-1].stored_at if rows else None


def newest_stored_at(now: datetime | None = None) -> datetime | None:
    """When the most recently stored kline (of any symbol) was stored (widening windows, as above)."""
    for since in pipelines.lookback(now or datetime.now(UTC), RECENTLY_STORED):
        newest = list(Kline.objects.raw_aggregate(pipelines.newest_stored(since)))
        if newest:
            return newest[0].stored_at
    return None
