"""The two comparison servers of the connect storm, each its own process.

* ``bare``, the ceiling: the ``websockets`` library sending precomputed frames (the very
  frames our service sent; the first ``n`` with ``?n=``), then holding the connection, or
  closing it with ``--close-reason`` (the replay's baseline).
* ``naive``, the design the service replaced: on every connection, a query per coin
  for its newest klines, on the same lean transport, indexes and payload code, with
  pymongo in a small thread pool (as fast as pymongo's asyncio client or 16 threads:
  all top out near the ~110 connections/s at which the database answers).

Usage: ``python -m bench.baselines bare --port P --frames FILE`` or
``python -m bench.baselines naive --port P --mongo-uri URI --database DB --symbols a,b``.
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
from urllib.parse import parse_qs, urlsplit
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


async def serve_bare(port: int, frames: list[str], close_reason: str) -> None:
    async def handler(connection: ServerConnection) -> None:
        count = parse_qs(urlsplit(connection.request.path).query).get("n", [len(frames)])[0]
        try:
            for frame in frames[: int(count)]:
                await connection.send(frame)
            if close_reason:
                await connection.close(1000, close_reason)
                return
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


async def serve_naive(port: int, mongo_uri: str, database: str, symbols: list[str]) -> None:
    """One-minute klines of ``database.klines``, the payloads in UTC, 4 database threads."""
    from pymongo import MongoClient

    klines = MongoClient(mongo_uri, tz_aware=True)[database]["klines"]
    timezone = ZoneInfo("UTC")
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(4, thread_name_prefix="naive-db"))

    def payload(symbol: str) -> str:
        cursor = klines.find({"symbol": symbol, "interval": "1m"}, {"open_time": 1, "open": 1, "close": 1})
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
        print(f"naive server on 127.0.0.1:{port} querying {database}.klines", flush=True)
        await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    bare = sub.add_parser("bare", help="send precomputed frames")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--frames", type=Path, required=True, help="JSON list of the frames to send")
    bare.add_argument("--close-reason", default="", help="then close (1000) with this reason")
    naive = sub.add_parser("naive", help="query MongoDB on every connection")
    naive.add_argument("--port", type=int, required=True)
    naive.add_argument("--mongo-uri", required=True)
    naive.add_argument("--database", required=True)
    naive.add_argument("--symbols", required=True, help="comma-separated, in payload order")
    args = parser.parse_args()
    if args.kind == "bare":
        run = serve_bare(args.port, json.loads(args.frames.read_text()), args.close_reason)
    else:
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        run = serve_naive(args.port, args.mongo_uri, args.database, symbols)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run)


if __name__ == "__main__":
    main()
