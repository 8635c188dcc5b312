"""Writes: store closed klines idempotently (the only code that inserts klines)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import IntegrityError, connections, router
from pymongo.errors import BulkWriteError

from klines.binance.parse import ClosedKline
from klines.models import Kline
from klines.store import pipelines

DUPLICATE_KEY = 11000


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


def insert_new(klines: Sequence[ClosedKline]) -> tuple[list[ClosedKline], list[ClosedKline]]:
    """Insert ``klines`` in one unordered ``insert_many``: (the newly stored, those whose key was already stored).

    Unordered, the server stores every kline whose key is free and names the
    others; nothing is read first. The documents are the ORM's own
    (:meth:`Kline.objects.bulk_create` builds them the same way).
    """
    if not klines:
        return [], []
    connection = connections[router.db_for_write(Kline)]
    fields = [f for f in Kline._meta.concrete_fields if not f.primary_key]
    documents = []
    for kline in klines:
        row = Kline(**kline.as_fields())
        documents.append({f.column: f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields})
    try:
        connection.get_collection(Kline._meta.db_table).insert_many(
            documents, ordered=False, session=connection.session
        )
        return list(klines), []
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors") or []
        if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        taken = {e["index"] for e in errors}
    return [k for i, k in enumerate(klines) if i not in taken], [klines[i] for i in sorted(taken)]


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
