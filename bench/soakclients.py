"""Clients for the churn soak: Binance-protocol stream stayers and churners, and paced churn loops.

:class:`TextClient` hands every text frame to :meth:`~TextClient.on_text` and sends
requests; :class:`StreamStayer` logs its streams' events for :mod:`bench.stayers`;
:func:`stream_session` is one churner's life (SUBSCRIBE, an event, UNSUBSCRIBE,
SUBSCRIBE another, an event of it, close); :func:`churn` runs sessions at a bounded rate.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.stayers import StreamLog
from bench.wsclient import FeedConnection, client_frame, open_connection

_TEXT = 0x1
TIME_LIMIT = 30.0
Session = Callable[[int, "ChurnTally", random.Random], Awaitable[None]]  # one churner's life on a port


def event_of(message: dict[str, Any]) -> dict[str, Any] | None:
    """The kline event in a raw (``/ws``) or combined (``/stream``) frame; ``None`` for a request's reply."""
    return message["data"] if "data" in message else message if message.get("e") == "kline" else None


class TextClient(FeedConnection):
    """Ready once upgraded (no initial frames); keeps every decoded text frame until :meth:`expect` consumes it."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(port, initial=0, path=path)
        self.messages: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self.gone: str | None = None  # a symbol unsubscribed: its events are counted from now on
        self.after_gone = 0

    def on_text(self, payload: bytes) -> None:
        message = json.loads(payload)
        if self.gone is not None and (event := event_of(message)) is not None and event["s"] == self.gone:
            self.after_gone += 1
        self.messages.append(message)
        self._arrived.set()

    def unsubscribed(self, symbol: str) -> None:
        """UNSUBSCRIBE of ``symbol`` was answered (the frames kept are those after the reply): count its events."""
        self.gone = symbol
        self.after_gone = sum(1 for m in self.messages if (e := event_of(m)) is not None and e["s"] == symbol)

    def request(self, method: str, params: list[str], request_id: int) -> None:
        body = {"method": method, "params": params, "id": request_id}
        self.transport.write(client_frame(_TEXT, json.dumps(body).encode()))

    async def expect(self, wanted: Callable[[dict[str, Any]], bool], time_limit: float = 10.0) -> dict[str, Any]:
        """The first kept frame ``wanted`` accepts; it and every frame before it are consumed."""
        async with asyncio.timeout(time_limit):
            while True:
                for n, message in enumerate(self.messages):
                    if wanted(message):
                        del self.messages[: n + 1]
                        return message
                self.messages.clear()
                self._arrived.clear()
                if self.closed.done():
                    raise ConnectionError("closed by the server")
                await self._arrived.wait()


class StreamStayer(TextClient):
    """Stays for the whole soak; logs each event of its streams (per symbol) as it arrives."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(port, path)
        self.logs: dict[str, StreamLog] = {}

    def on_text(self, payload: bytes) -> None:
        message = json.loads(payload)
        if (event := event_of(message)) is None:  # a request's reply, kept for expect()
            self.messages.append(message)
            self._arrived.set()
            return
        k = event["k"]
        self.logs.setdefault(k["s"], StreamLog()).add(closed=k["x"], open_ms=k["t"], last_trade=k["L"])


async def open_stream_stayer(port: int, streams: Sequence[str], *, combined_url: bool) -> StreamStayer:
    """On ``/market/stream?streams=...`` (``combined_url``), or on ``/ws`` subscribing with SUBSCRIBE."""
    path = "/market/stream?streams=" + "/".join(streams) if combined_url else "/ws"
    client, _, _ = await open_connection(port, time_limit=TIME_LIMIT, factory=lambda: StreamStayer(port, path))
    if not combined_url:
        client.request("SUBSCRIBE", list(streams), 1)
        await client.expect(_reply(1))
    return client


@dataclass
class ChurnTally:
    """Churn sessions per port."""

    completed: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    first_error: str = ""
    after_unsubscribe: int = 0  # events of a stream received after UNSUBSCRIBE was answered


def _reply(request_id: int) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("id") == request_id and "result" in m


def _event(stream: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (event := event_of(m)) is not None and (stream is None or event["s"] == stream)


async def feed_session(port: int, tally: ChurnTally, _: random.Random) -> None:
    """``/``: connect, read the five frames, close."""
    connection, _, _ = await open_connection(port, time_limit=TIME_LIMIT)
    await connection.close(TIME_LIMIT)
    tally.completed[port] += 1


def stream_session(streams: Sequence[str]) -> Session:
    """A churner on the Binance-protocol streams, legacy paths (``/ws`` raw or ``/stream`` combined)."""

    async def session(port: int, tally: ChurnTally, rng: random.Random) -> None:
        first, second, third = rng.sample(list(streams), 3)
        path = rng.choice(("/ws", "/stream"))
        client, _, _ = await open_connection(port, time_limit=TIME_LIMIT, factory=lambda: TextClient(port, path))
        try:
            client.request("SUBSCRIBE", [first, second], 1)
            await client.expect(_reply(1))
            await client.expect(_event())
            client.request("UNSUBSCRIBE", [first], 2)
            await client.expect(_reply(2))
            client.unsubscribed(first.split("@")[0].upper())
            client.request("SUBSCRIBE", [third], 3)
            await client.expect(_reply(3))
            await client.expect(_event(third.split("@")[0].upper()))
            tally.after_unsubscribe += client.after_gone
        finally:
            await client.close(TIME_LIMIT)
        tally.completed[port] += 1

    return session


async def churn(ports: Sequence[int], session: Session, *, seconds: float, rate: float, concurrency: int,
                tally: ChurnTally) -> None:  # fmt: skip
    """Run ``session`` at up to ``rate`` a second, ``concurrency`` at most in flight, alternating ``ports``."""
    slot = time.monotonic()
    deadline, started = slot + seconds, 0

    async def worker(seed: int) -> None:
        nonlocal started, slot
        rng = random.Random(seed)
        while True:
            # Start times 1 / rate apart; a late worker starts at once (no catching up in bursts).
            now = time.monotonic()
            mine, slot = max(now, slot), max(now, slot) + 1.0 / rate
            await asyncio.sleep(mine - now)
            if time.monotonic() >= deadline:
                return
            port = ports[started % len(ports)]
            started += 1
            try:
                await session(port, tally, rng)
            except Exception as exc:  # counted, reported; the churn goes on
                tally.errors += 1
                tally.first_error = tally.first_error or f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.1)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
