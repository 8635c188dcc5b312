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

:func:`load_direct` is the bulk-load configuration for records past a million
(``python -m bench.bulkseed --dir /work/bench-data/10m --klines 10000000``):
``migrate`` runs against a normal ``secantusd``, which is then stopped; this
process opens the same WiredTiger home through SecantusDB's own ``Storage``
with the oplog off and inserts with the migration's indexes in place (the very
code path the server runs, minus the wire protocol, BSON decoding, the oplog
and three per-document catalog reads); then a normal ``secantusd`` reopens the
directory and checks the count and the indexes. Resumable: the progress per
symbol is kept beside the data.
"""

from __future__ import annotations

import json
import random
import signal
import struct
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bson.decimal128 import Decimal128
from pymongo import IndexModel, MongoClient

if TYPE_CHECKING:
    from klines.testing.servers import SecantusServer

MINUTE = timedelta(minutes=1)
BATCH = 10_000  # documents per insert_many (SecantusDB commits them in chunks of 1,000)
LOADERS = 2
DIRECT_BATCH = 1_000  # documents per Storage.insert: one WiredTiger transaction
STORE_DELAY = timedelta(milliseconds=40)  # stored_at: just after the close, as the ingest stores it
# secantusd opens a 10M-kline home in ~35 CPU-seconds before it listens: past SecantusServer's 20 s when loaded.
OPEN_TIMEOUT = 600.0


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


def _bulk_storage(path: Path, cache_size: str):
    """SecantusDB's ``Storage`` on ``path``, oplog off, its per-document catalog reads cached.

    The load never changes the indexes and stores no geo data, so the index options
    are read once, the geo pre-flight is skipped, the unique probe is left to the
    unique-key table every insert still claims (a duplicate is refused there), and
    the partial filter of ``unique_kline`` (string symbol and interval, a date) is
    not evaluated: every seeded document matches it.
    """
    from secantus.storage import Storage

    storage = Storage(str(path), enable_oplog=False, cache_size=cache_size, durable=True)
    options: dict[tuple[str, str], dict[str, Any]] = {}
    read_options = storage._index_options_map
    storage._index_options_map = lambda db, coll: (
        options.get((db, coll)) or options.setdefault((db, coll), read_options(db, coll))
    )
    storage._validate_geo_indexes = lambda *args, **kwargs: None
    storage._partial_filters = lambda db, coll: {}  # every seeded kline matches unique_kline's filter
    storage._unique_conflict = lambda *args, **kwargs: None
    return storage


def load_direct(
    path: Path,
    database: str,
    collection: str,
    *,
    symbols: list[str],
    interval: str,
    first_open: datetime,
    minutes: int,
    progress_file: Path,
    cache_size: str = "3G",
    report: Any = print,
) -> float:
    """Insert ``minutes`` klines per symbol into the stopped server's home ``path``; returns the seconds spent.

    ``progress_file`` holds the klines stored per symbol; a new run skips them.
    """
    done: dict[str, int] = json.loads(progress_file.read_text()) if progress_file.exists() else {}
    storage = _bulk_storage(path, cache_size)
    began = time.monotonic()
    stored = sum(done.values())
    try:
        for symbol in symbols:
            if done.get(symbol, 0) >= minutes:
                continue  # stored in full by an earlier run: not generated again only to be skipped
            rows = islice(documents(symbol, interval, first_open, minutes), done.get(symbol, 0), None)
            while batch := list(islice(rows, DIRECT_BATCH)):
                inserted, errors = storage.insert(database, collection, batch, ordered=False)
                if errors and any(e["code"] != 11000 for e in errors):
                    raise RuntimeError(f"{symbol}: {errors[0]['errmsg']}")
                done[symbol] = done.get(symbol, 0) + len(batch)
                stored += inserted
                progress_file.write_text(json.dumps(done))
                if done[symbol] % 100_000 == 0:
                    elapsed = time.monotonic() - began
                    report(f"{symbol} {done[symbol]:,}/{minutes:,}; {sum(done.values()):,} in all, {elapsed:.0f} s")
    finally:
        storage.close()
    return time.monotonic() - began


def open_record(data: Path, timeout: float = OPEN_TIMEOUT) -> SecantusServer:
    """A normal SecantusDB on a kept record's home ``data``, given ``timeout`` seconds to open it and listen."""
    from klines.testing.servers import SecantusServer, wait_for_port

    server = SecantusServer(data)
    try:
        try:
            return server.start()
        except TimeoutError:  # still opening the home: wait longer for the same process
            wait_for_port(server.port, timeout=timeout, process=server.process)
        client = MongoClient(server.uri, serverSelectionTimeoutMS=round(timeout * 1000))
        client.admin.command("ping")
        client.close()
    except BaseException:
        server.stop()
        raise
    return server


def prepare(directory: Path, klines: int, *, database: str, symbols: list[str], interval: str) -> dict[str, Any]:
    """Build (or finish building) a record of ``klines`` one-minute klines in ``directory``/data.

    ``directory``/record.json says what is there (symbols, first open, minutes,
    the seeding times); a finished record is reused as it is.
    """
    import subprocess

    from klines.testing.servers import ROOT, SecantusServer, service_env

    meta_file, data = directory / "record.json", directory / "data"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    if meta.get("complete"):
        return meta
    if not meta:
        server = SecantusServer(data).start()
        try:
            env = service_env(server.uri, database)
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], env=env, check=True
            )
            client = MongoClient(server.uri)
            specs = list(client[database]["klines"].list_indexes())
            client.close()
        finally:
            server.stop()
        minutes = -(-klines // len(symbols))
        first_open = datetime.now(UTC).replace(second=0, microsecond=0) - minutes * MINUTE
        meta = {
            "database": database,
            "collection": "klines",
            "symbols": symbols,
            "interval": interval,
            "minutes": minutes,
            "first_open_ms": round(first_open.timestamp() * 1000),
            "indexes": [dict(spec) for spec in specs],
            "load_seconds": 0.0,
        }
        meta_file.write_text(json.dumps(meta, indent=1, default=str))
    first_open = datetime.fromtimestamp(meta["first_open_ms"] / 1000, UTC)
    meta["load_seconds"] += load_direct(
        data,
        database,
        meta["collection"],
        symbols=meta["symbols"],
        interval=meta["interval"],
        first_open=first_open,
        minutes=meta["minutes"],
        progress_file=directory / "progress.json",
    )
    meta_file.write_text(json.dumps(meta, indent=1, default=str))
    server = open_record(data)  # the normal configuration: oplog on, as every test and bench runs it
    try:
        client = MongoClient(server.uri)
        klines_coll = client[database][meta["collection"]]
        count = klines_coll.estimated_document_count()  # count_documents would read all 10M
        indexes = [dict(spec) for spec in klines_coll.list_indexes()]
        client.close()
    finally:
        server.stop()
    expected = len(meta["symbols"]) * meta["minutes"]
    if count != expected:
        raise RuntimeError(f"{data}: {count:,} klines stored, {expected:,} expected")
    if sorted(indexes, key=str) != sorted(meta["indexes"], key=str):
        raise RuntimeError(f"{data}: the indexes differ from migrate's: {indexes} != {meta['indexes']}")
    meta.update(complete=True, klines=count)
    meta_file.write_text(json.dumps(meta, indent=1, default=str))
    return meta


def main() -> None:
    import argparse

    from bench.scenarios.history import SYMBOLS

    parser = argparse.ArgumentParser(prog="python -m bench.bulkseed", description=prepare.__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="where the record is kept, e.g. /work/bench-data/10m")
    parser.add_argument("--klines", type=int, default=10_000_000)
    parser.add_argument("--database", default="bench_bigrecord")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    # Stopped by a signal (a background job ignores SIGINT), the load closes the home cleanly; run again to resume.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"stopped by signal {signum}; run again to resume"))
    meta = prepare(args.dir, args.klines, database=args.database, symbols=SYMBOLS, interval="1m")
    print(json.dumps({k: v for k, v in meta.items() if k != "indexes"}), flush=True)


if __name__ == "__main__":
    main()
