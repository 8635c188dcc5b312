"""The klines collection's unique index on (symbol, interval, open time), which exactly-once storing depends on."""

from __future__ import annotations

from django.db import connections, router

from klines.models import Kline

UNIQUE_KEY = ["symbol", "interval", "open_time"]


class UniqueIndexMissing(Exception):
    """The klines collection lacks its unique index; the message says which collection and what to do."""


def has_unique_index(indexes: list[dict]) -> bool:
    """Pure: whether ``indexes`` (as ``list_indexes`` gives them) hold a unique index on exactly the kline key."""
    return any(index.get("unique") and list(index.get("key", {})) == UNIQUE_KEY for index in indexes)


def require_unique_index() -> None:
    """Raise :class:`UniqueIndexMissing` unless the klines collection has its unique (symbol, interval, open time)
    index (database errors propagate: the caller decides whether to wait for the database)."""
    connection = connections[router.db_for_write(Kline)]
    collection = connection.get_collection(Kline._meta.db_table)
    if not has_unique_index(list(collection.list_indexes(session=connection.session))):
        name = f"{connection.settings_dict['NAME']}.{Kline._meta.db_table}"
        raise UniqueIndexMissing(
            f"collection {name} has no unique index on (symbol, interval, open_time), which storing each kline "
            "exactly once depends on: run `python manage.py migrate` against this MONGO_URI and MONGO_DATABASE"
        )
