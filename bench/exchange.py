"""The simulated exchange with closes on command, run as its own process.

It is the project's :class:`SimulatedExchange` (same combined stream, same REST,
same deterministic klines), except that klines close when the benchmark says
so rather than on the clock, so a measurement starts at a known moment:

* ``GET /bench/status`` -> ``{"connections": n, "streams": n}``;
* ``GET /bench/close?symbols=BTCUSDT,ETHUSDT`` (or ``symbols=*``) sends the
  close of each symbol's next kline on every stream that carries it, all
  connections at once, and answers ``{"sent_at": .., "done_at": .., "open_ms": {symbol: ms}}``
  (wall-clock seconds).

Unclosed updates flow every ``--update-seconds`` as from Binance (the same
frame for a kline each time, so the harness stays cheap).

Usage: ``python -m bench.exchange --port P --symbols-file FILE [--update-seconds 0.25]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from klines.simexchange.server import SimulatedExchange, json_response


class ScriptedExchange(SimulatedExchange):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._streams: dict[ServerConnection, list[str]] = {}
        self._next: dict[str, int] = {}
        self._updates: dict[tuple[str, int], str] = {}

    async def _handle_stream(self, connection: ServerConnection) -> None:
        symbols = self._requested_streams(connection.request.path).get(self.interval, [])
        self._streams[connection] = symbols
        try:
            while True:
                index = self.current_index()
                for symbol in symbols:
                    await connection.send(self._update_frame(symbol, self._next.get(symbol, index)))
                await asyncio.sleep(self.update_seconds)
        except ConnectionClosed:
            pass
        finally:
            self._streams.pop(connection, None)

    def _update_frame(self, symbol: str, index: int) -> str:
        """An unclosed update of the kline, encoded once per kline: the harness must stay cheap."""
        key = (symbol, index)
        frame = self._updates.get(key)
        if frame is None:
            partial = self.series.partial(symbol, index, 0.5)
            frame = json.dumps(partial.stream_event(closed=False, event_ms=partial.open_ms + 30_000))
            self._updates[key] = frame
        return frame

    async def close_next(self, wanted: set[str] | None) -> dict:
        """Close each wanted symbol's next kline on every stream carrying it, concurrently."""
        current = self.current_index()
        plan: dict[ServerConnection, list[str]] = {}
        open_ms: dict[str, int] = {}
        for connection, symbols in self._streams.items():
            frames = []
            for symbol in symbols:
                if wanted is not None and symbol not in wanted:
                    continue
                index = self._next.get(symbol, current)
                kline = self.series.kline(symbol, index)
                open_ms[symbol] = kline.open_ms
                # Closed on command, ahead of the clock: the event is dated at the close, as Binance dates it
                # (the ingest refuses a close dated after its own event as future-dated).
                event_ms = max(self.now_ms(), kline.close_ms + 1)
                frames.append(json.dumps(kline.stream_event(closed=True, event_ms=event_ms)))
            plan[connection] = frames
        for symbol, ms in open_ms.items():
            self._next[symbol] = ms // self.series.interval_ms + 1
        sent_at = time.time()
        await asyncio.gather(*(self._send_all(c, frames) for c, frames in plan.items()))
        return {"sent_at": sent_at, "done_at": time.time(), "open_ms": open_ms}

    async def _send_all(self, connection: ServerConnection, frames: list[str]) -> None:
        try:
            for frame in frames:
                await connection.send(frame)
        except ConnectionClosed:
            pass

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path == "/bench/status":
            streams = sum(len(s) for s in self._streams.values())
            return json_response(connection, HTTPStatus.OK, {"connections": len(self._streams), "streams": streams})
        if parts.path == "/bench/close":
            raw = parse_qs(parts.query).get("symbols", ["*"])[0]
            wanted = None if raw == "*" else {s.strip().upper() for s in raw.split(",") if s.strip()}
            return json_response(connection, HTTPStatus.OK, await self.close_next(wanted))
        return super()._process_request(connection, request)


async def run(port: int, symbols: list[str], interval: str, update_seconds: float) -> None:
    exchange = ScriptedExchange(symbols=symbols, interval=interval, update_seconds=update_seconds)
    await exchange.start("127.0.0.1", port)
    print(f"scripted exchange on 127.0.0.1:{port} with {len(symbols)} symbols", flush=True)
    await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.exchange")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--symbols-file", type=Path, required=True, help="one symbol per line")
    parser.add_argument("--interval", default="1m")
    parser.add_argument("--update-seconds", type=float, default=0.25)
    args = parser.parse_args()
    symbols = [s.strip().upper() for s in args.symbols_file.read_text().split() if s.strip()]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.port, symbols, args.interval, args.update_seconds))


if __name__ == "__main__":
    main()
