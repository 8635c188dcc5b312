"""The two comparison servers of the connect storm, each run as its own process.

* ``bare``: the ceiling. A plain asyncio server on the ``websockets`` library
  that sends five precomputed frames (the exact frames our service sent) and
  then just holds the connection, as the service does.
* ``naive``: the design the service replaced. On every connection it queries
  MongoDB for the newest klines of each coin and builds the payloads then. It
  is given every advantage: the same lean ``websockets`` transport as ``bare``,
  the same indexes and the same payload code as the service, and pymongo in a
  small thread pool (on SecantusDB this gave a tighter p99 than pymongo's
  asyncio client or 16 threads: every variant tops out near the same ~110
  connections/s, the rate at which the database answers five queries each).
  Only the per-connection queries differ.

Usage: ``python -m bench.baselines bare --port P --frames FILE`` or
``python -m bench.baselines naive --port P --mongo-uri URI --database DB
--collection C --symbols btcusdt,... --interval 1m``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from klines.serving.payloads import build_payload, encode_frame
from klines.window import HISTORY


async def _hold(connection: ServerConnection) -> None:
    """Read and ignore whatever the client sends until it closes."""
    try:
        async for _ in connection:
            pass
    except ConnectionClosed:
        pass


async def serve_bare(port: int, frames: list[str]) -> None:
    async def handler(connection: ServerConnection) -> None:
        try:
            for frame in frames:
                await connection.send(frame)
        except ConnectionClosed:
            return
        await _hold(connection)

    async with serve(handler, "127.0.0.1", port, compression=None):
        print(f"bare websockets server on 127.0.0.1:{port}", flush=True)
        await asyncio.Future()


def _as_kline(document: dict) -> SimpleNamespace:
    def number(value: object) -> Decimal:
        return value.to_decimal() if hasattr(value, "to_decimal") else Decimal(str(value))

    return SimpleNamespace(
        open_time=document["open_time"], open=number(document["open"]), close=number(document["close"])
    )


async def serve_naive(
    port: int,
    *,
    mongo_uri: str,
    database: str,
    collection: str,
    symbols: list[str],
    interval: str,
    zone: str,
    threads: int,
) -> None:
    from pymongo import MongoClient

    klines = MongoClient(mongo_uri, tz_aware=True)[database][collection]
    timezone = ZoneInfo(zone)
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(threads, thread_name_prefix="naive-db"))

    def payload(symbol: str) -> str:
        cursor = klines.find({"symbol": symbol, "interval": interval}, {"open_time": 1, "open": 1, "close": 1})
        newest = list(cursor.sort("open_time", -1).limit(HISTORY))
        return encode_frame(build_payload(symbol, [_as_kline(d) for d in reversed(newest)], timezone))

    async def handler(connection: ServerConnection) -> None:
        try:
            for symbol in symbols:  # one query per coin per connection: the naive design
                await connection.send(await asyncio.to_thread(payload, symbol))
        except ConnectionClosed:
            return
        await _hold(connection)

    async with serve(handler, "127.0.0.1", port, compression=None):
        print(f"naive server on 127.0.0.1:{port} querying {database}.{collection}", flush=True)
        await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    bare = sub.add_parser("bare", help="send five precomputed frames")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--frames", type=Path, required=True, help="JSON list of the frames to send")
    naive = sub.add_parser("naive", help="query MongoDB on every connection")
    naive.add_argument("--port", type=int, required=True)
    naive.add_argument("--mongo-uri", required=True)
    naive.add_argument("--database", required=True)
    naive.add_argument("--collection", default="klines")
    naive.add_argument("--symbols", required=True, help="comma-separated, in payload order")
    naive.add_argument("--interval", default="1m")
    naive.add_argument("--timezone", default="UTC")
    naive.add_argument("--threads", type=int, default=4, help="database threads (default 4)")
    args = parser.parse_args()
    if args.kind == "bare":
        run = serve_bare(args.port, json.loads(args.frames.read_text()))
    else:
        run = serve_naive(
            args.port,
            mongo_uri=args.mongo_uri,
            database=args.database,
            collection=args.collection,
            symbols=[s.strip().upper() for s in args.symbols.split(",") if s.strip()],
            interval=args.interval,
            zone=args.timezone,
            threads=args.threads,
        )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run)


if __name__ == "__main__":
    main()
