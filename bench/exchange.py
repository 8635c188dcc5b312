"""The simulated exchange with closes on command, run as its own process (``python -m bench.exchange``).

The project's :class:`SimulatedExchange` (same streams, REST and klines), except that
``GET /bench/close?symbols=A,B`` (or ``*``) closes each symbol's next kline on every
stream at once and answers ``{"sent_at", "done_at", "open_ms"}``; ``GET /bench/status``
counts connections, streams and frames sent; ``GET /bench/rest`` lists every REST
request as ``[wall time, path, Binance's weight]``. Updates flow every
``--update-seconds``, each stamped with its send time in ``E`` (ms) and its round in
``k.L``, so a client can time it and find a lost or reordered update;
``--clock-closes`` closes every kline at its boundary, as Binance does.
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
from klines.simexchange.weight import request_weight


class ScriptedExchange(SimulatedExchange):
    def __init__(self, *, clock: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.clock = clock  # close on the clock, as Binance, instead of on command
        self._streams: dict[ServerConnection, list[str]] = {}
        self._next: dict[str, int] = {}
        self._templates: dict[tuple[str, int], tuple[str, str, str]] = {}
        self._sent: dict[ServerConnection, int] = {}
        self._rounds: dict[ServerConnection, int] = {}
        self._finished: list[tuple[int, int]] = []  # (sent, rounds) of connections that left
        self.rest_log: list[tuple[float, str, int]] = []

    async def _handle_stream(self, connection: ServerConnection) -> None:
        symbols = self._requested_streams(connection.request.path).get(self.interval, [])
        self._streams[connection] = symbols
        self._sent[connection] = self._rounds[connection] = 0
        try:
            if self.clock:
                await super()._handle_stream(connection)
                return
            while True:
                index = self.current_index()
                round_ = self._rounds[connection] + 1
                for symbol in symbols:  # of the kline after the last one closed on command, if any
                    await connection.send(self._sequenced_frame(symbol, self._next.get(symbol, index), round_))
                self._sent[connection] += len(symbols)
                self._rounds[connection] = round_
                await asyncio.sleep(self.update_seconds)
        except ConnectionClosed:
            pass
        finally:
            self._streams.pop(connection, None)
            self._finished.append((self._sent.pop(connection, 0), self._rounds.pop(connection, 0)))

    def _sequenced_frame(self, symbol: str, index: int, round_: int) -> str:
        """An unclosed update stamped with the send time (``E``, ms) and the round (``k.L``); cheap to build."""
        key = (symbol, index)
        template = self._templates.get(key)
        if template is None:
            event = self.series.partial(symbol, index, 0.5).stream_event(closed=False, event_ms=0)
            event["data"]["E"] = "@E@"
            event["data"]["k"]["L"] = "@L@"
            head, rest = json.dumps(event).split('"@E@"')
            middle, tail = rest.split('"@L@"')
            template = self._templates[key] = (head, middle, tail)
        head, middle, tail = template
        return f"{head}{int(time.time() * 1000)}{middle}{100 + round_}{tail}"

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
            status = {"connections": len(self._streams), "streams": sum(len(s) for s in self._streams.values())}
            status |= {"sent": list(self._sent.values()), "rounds": list(self._rounds.values())}
            status["sent_by_closed_connections"] = sum(sent for sent, _ in self._finished)
            return json_response(connection, HTTPStatus.OK, status)
        if parts.path == "/bench/rest":
            return json_response(connection, HTTPStatus.OK, {"requests": self.rest_log})
        if parts.path == "/bench/close":
            raw = parse_qs(parts.query).get("symbols", ["*"])[0]
            wanted = None if raw == "*" else {s.strip().upper() for s in raw.split(",") if s.strip()}
            return json_response(connection, HTTPStatus.OK, await self.close_next(wanted))
        if request.headers.get("Upgrade", "").lower() != "websocket":
            self.rest_log.append((time.time(), parts.path, request_weight(parts.path, parse_qs(parts.query))))
        return super()._process_request(connection, request)


async def run(port: int, symbols: list[str], clock: bool) -> None:
    """One-minute klines of ``symbols``, an update of each every 250 ms."""
    await ScriptedExchange(symbols=symbols, interval="1m", update_seconds=0.25, clock=clock).start("127.0.0.1", port)
    print(f"scripted exchange on 127.0.0.1:{port} with {len(symbols)} symbols", flush=True)
    await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.exchange")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--symbols-file", type=Path, required=True, help="one symbol per line")
    parser.add_argument("--clock-closes", action="store_true", help="close every kline at its boundary, as Binance")
    args = parser.parse_args()
    symbols = [s.strip().upper() for s in args.symbols_file.read_text().split() if s.strip()]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.port, symbols, args.clock_closes))


if __name__ == "__main__":
    main()
