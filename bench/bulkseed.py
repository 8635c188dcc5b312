"""Store a large record fast: ORM-shaped documents through pymongo, the migration's indexes built afterwards.

The documents are the ones the ORM writes for :class:`klines.models.Kline`
(Decimal128 prices, UTC datetimes, ``stored_at``, an ObjectId ``_id``); the
prices follow a random walk in whole ticks, each symbol's record ends at the
current minute. The collection and its indexes come from the real
``migrate``; SecantusDB maintains secondary indexes in Python, one document at
a time, so the indexes are dropped before the load and created again, from the
very specifications ``migrate`` made, in one ``createIndexes`` afterwards:
measured on 200,000 klines, that halves the seeding time (3,500 -> 6,400
klines/s). Two loader processes keep SecantusDB busy while each prepares its
next batch.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from bson.decimal128 import Decimal128
from pymongo import IndexModel, MongoClient

MINUTE = timedelta(minutes=1)
BATCH = 10_000  # documents per insert_many (SecantusDB commits them in chunks of 1,000)
LOADERS = 2
STORE_DELAY = timedelta(milliseconds=40)  # stored_at: just after the close, as the ingest stores it


@dataclass(frozen=True)
class SeedResult:
    klines: int
    first_open_ms: int  # open time of every symbol's oldest kline
    insert_seconds: float
    index_seconds: float

    @property
    def seconds(self) -> float:
        return self.insert_seconds + self.index_seconds


def index_models(specs: list[dict[str, Any]]) -> list[IndexModel]:
    """``listIndexes`` output -> the same indexes as :class:`IndexModel` (``_id_`` left out)."""
    models = []
    for spec in specs:
        if spec["name"] == "_id_":
            continue
        options = {k: v for k, v in spec.items() if k not in ("v", "key", "ns")}
        models.append(IndexModel(list(spec["key"].items()), **options))
    return models


def decimal128(units: int, places: int) -> Decimal128:
    """``units * 10**-places`` as Decimal128, encoded directly (``Decimal128(str)`` costs ~4 us, too slow for 1M)."""
    high = ((6176 - places) << 49) | (units >> 64)
    return Decimal128.from_bid(struct.pack("<QQ", units & 0xFFFF_FFFF_FFFF_FFFF, high))


def documents(symbol: str, interval: str, first_open: datetime, count: int) -> Iterator[dict[str, Any]]:
    """``count`` one-minute klines of ``symbol`` from ``first_open``, shaped as the ORM stores them."""
    rng = random.Random(symbol)
    ticks = rng.randrange(10_000, 10_000_000)  # prices in hundredths, e.g. 3400.57
    volumes = [decimal128(rng.randrange(10_000, 500_000), 3) for _ in range(997)]
    quotes = [decimal128(rng.randrange(10**8, 10**11), 5) for _ in range(991)]
    for i in range(count):
        open_time = first_open + i * MINUTE
        close_ticks = max(1, ticks + rng.randint(-ticks // 500 - 1, ticks // 500 + 1))
        high, low = max(ticks, close_ticks) + rng.randint(0, 20), max(1, min(ticks, close_ticks) - rng.randint(0, 20))
        yield {
            "symbol": symbol,
            "interval": interval,
            "open_time": open_time,
            "close_time": open_time + MINUTE - timedelta(milliseconds=1),
            "open": decimal128(ticks, 2),
            "high": decimal128(high, 2),
            "low": decimal128(low, 2),
            "close": decimal128(close_ticks, 2),
            "volume": volumes[i % 997],
            "quote_volume": quotes[i % 991],
            "trades": 100 + (i * 7919) % 5000,
            "taker_buy_base_volume": volumes[(i * 31) % 997],
            "taker_buy_quote_volume": quotes[(i * 17) % 991],
            "stored_at": open_time + MINUTE + STORE_DELAY,
        }
        ticks = close_ticks


def _load(
    uri: str, database: str, collection: str, symbols: list[str], interval: str, first_open: datetime, count: int
):
    klines = MongoClient(uri, tz_aware=True)[database][collection]
    for symbol in symbols:
        rows = documents(symbol, interval, first_open, count)
        while batch := list(islice(rows, BATCH)):
            klines.insert_many(batch, ordered=False)
    klines.database.client.close()


def seed(
    uri: str, database: str, collection: str, *, symbols: list[str], interval: str, minutes: int, now: datetime
) -> SeedResult:
    """Store ``minutes`` one-minute klines per symbol, the newest opening the minute before ``now``.

    The collection must exist, migrated and empty.
    """
    klines = MongoClient(uri, tz_aware=True)[database][collection]
    specs = list(klines.list_indexes())
    klines.drop_indexes()
    first_open = now.astimezone(UTC).replace(second=0, microsecond=0) - minutes * MINUTE
    began = time.monotonic()
    shares = [symbols[i::LOADERS] for i in range(LOADERS)]
    with ProcessPoolExecutor(LOADERS) as pool:
        jobs = [pool.submit(_load, uri, database, collection, s, interval, first_open, minutes) for s in shares if s]
        for job in jobs:
            job.result()
    inserted = time.monotonic()
    klines.create_indexes(index_models(specs))
    indexed = time.monotonic()
    rebuilt = list(klines.list_indexes())
    if sorted(map(dict, rebuilt), key=str) != sorted(map(dict, specs), key=str):
        raise RuntimeError(f"the rebuilt indexes differ from migrate's: {rebuilt} != {specs}")
    stored = klines.estimated_document_count()
    klines.database.client.close()
    first_open_ms = round(first_open.timestamp() * 1000)
    return SeedResult(
        klines=stored, first_open_ms=first_open_ms, insert_seconds=inserted - began, index_seconds=indexed - inserted
    )
