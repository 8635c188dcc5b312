"""A fault-injecting fake Binance for the reliability tests, run in a thread of the test process.

:class:`FaultyExchange` is the simulated exchange (combined stream + REST on one
127.0.0.1 port, ground truth from :class:`KlineSeries`, compressed clock) with
scriptable faults. Each fault is a method or an attribute the test sets while
the ingest runs; the exchange records what it did (connections, pings and
pongs, REST calls, frames dropped) so a test can check the fault really
happened.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from klines.binance.archive import parse_path
from klines.binance.parse import ClosedKline, parse_rest_row
from klines.simexchange.archive import checksum_of
from klines.simexchange.server import SimulatedExchange, json_response

INCOMING_LIMIT_PER_SECOND = 10  # Binance disconnects a connection that sends more
COUNTED = (Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG)


@dataclass(frozen=True)
class RestCall:
    at: float  # time.monotonic()
    path: str
    query: dict[str, str]
    status: int


class FaultyExchange(SimulatedExchange):
    def __init__(
        self,
        *,
        ping_interval: float | None = None,
        pong_timeout: float = 1.0,
        max_streams: int | None = None,
        drop_rate: float = 0.0,
        late_repeat: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_streams = max_streams
        self.drop_rate = drop_rate
        self.late_repeat = late_repeat
        self.stream_skips: set[int] = set()  # kline indexes whose closes never go out on the stream
        self.untraded: set[int] = set()  # kline indexes REST does not have (no trading then)
        self.connections: set[ServerConnection] = set()  # those carrying kline streams
        self.mark_connections: set[ServerConnection] = set()  # those carrying only mark-price streams
        self.connects = 0
        self.mark_connects = 0
        self.streams_per_connect: list[int] = []
        self.stalled: set[ServerConnection] = set()
        self.paused_until = 0.0
        self.refused_until = 0.0
        self.rejected_handshakes = 0
        self.injected: deque[str] = deque()
        self.rest_faults: deque[tuple[int, str | None]] = deque()
        self.archive_faults: dict[str, str] = {}  # archive file name -> "corrupt", "checksum", "missing"
        self.rest_calls: list[RestCall] = []
        self.pings = self.pongs = self.pong_timeouts = 0
        self.pong_frames = 0  # pong frames received (a pong may acknowledge several pings)
        self.client_messages = 0  # other frames received: text, binary, ping
        self.over_limit: set[ServerConnection] = set()  # connections cut off for sending too much
        self.frames_dropped = 0
        self.closes_skipped = 0
        self.closes_sent_on: dict[ServerConnection, dict[str, int]] = {}  # newest close open ms, per symbol
        self._random = random.Random(7)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Future] = set()

    # -- scripting (call from the test thread) -------------------------------------
    def kill_connections(self, *, abort: bool = False) -> int:
        """Close every open stream connection (a close frame), or ``abort`` (TCP drop, no close frame)."""
        connections = list(self.connections)
        for connection in connections:
            if abort:
                self._in_loop(lambda c=connection: c.transport.abort())
            else:
                self._await(connection.close(1001, "going away"))
        return len(connections)

    def stall_connections(self) -> int:
        """Stop sending on every open connection, without closing it."""
        self.stalled.update(self.connections)
        return len(self.stalled)

    def pause(self, seconds: float) -> None:
        """Hold all frames for ``seconds``, then send what piled up at once (a burst)."""
        self.paused_until = time.monotonic() + seconds

    def refuse(self, seconds: float) -> None:
        """Answer websocket handshakes with 503 for ``seconds`` (the exchange is unreachable)."""
        self.refused_until = time.monotonic() + seconds

    def inject(self, frames: Iterable[str | dict[str, Any]]) -> None:
        """Send these frames, as they are, before the next regular frame."""
        self.injected.extend(f if isinstance(f, str) else json.dumps(f) for f in frames)

    def fail_rest(self, status: int, retry_after: str | None, times: int = 1) -> None:
        """Answer the next ``times`` ``/fapi/v1/klines`` requests with ``status`` and ``Retry-After``."""
        self.rest_faults.extend([(status, retry_after)] * times)

    def archive_body(self, path: str) -> bytes | None:
        """The archive file, or the fault set for it: a truncated zip, a wrong ``.CHECKSUM``, or none at all."""
        body = super().archive_body(path)
        name = path.rsplit("/", 1)[-1].removesuffix(".CHECKSUM")
        fault = self.archive_faults.get(name)
        if body is None or fault is None:
            return body
        if fault == "missing":
            return None
        if fault == "checksum" and path.endswith(".CHECKSUM"):
            return b"0" * 64 + f"  {name}\n".encode()
        if fault == "corrupt":  # a broken zip, published with its own (matching) checksum
            named = parse_path(path)
            assert named is not None
            broken = self.archive_zip(named[0])[:-200]
            return checksum_of(named[0], broken).encode() if path.endswith(".CHECKSUM") else broken
        return body

    def skip_stream_closes(self, indexes: Iterable[int]) -> None:
        """Never send these klines' closes on the stream: REST alone has them."""
        self.stream_skips.update(indexes)

    # -- ground truth --------------------------------------------------------------
    def truth(self, symbol: str, first_index: int, last_index: int, interval: str | None = None) -> list[ClosedKline]:
        series = self.series_of[interval or self.interval]
        return [
            parse_rest_row(k.rest_row(), symbol=k.symbol, interval=k.interval)
            for k in (series.kline(symbol, i) for i in range(first_index, last_index + 1))
        ]

    def last_closed_index(self, interval: str | None = None) -> int:
        return self.current_index(interval) - 1

    # -- hooks into the simulated exchange -------------------------------------------
    def rest_klines(self, query: dict[str, list[str]]) -> tuple[HTTPStatus, Any]:
        status, rows = super().rest_klines(query)
        if status == HTTPStatus.OK and self.untraded:
            rows = [row for row in rows if row[0] // self.series.interval_ms not in self.untraded]
        return status, rows

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.loop = asyncio.get_running_loop()
        return await super().start(host, port)

    async def _handle_stream(self, connection: ServerConnection) -> None:
        # The faults and counts are the kline connections'; the mark-price ones are kept apart.
        path = connection.request.path
        klines = bool(self._requested_streams(path)) or not self._requested_marks(path)
        group = self.connections if klines else self.mark_connections
        group.add(connection)
        if klines:
            self.connects += 1
        else:
            self.mark_connects += 1
        self._watch_incoming(connection)
        tasks = [asyncio.create_task(self._ping(connection))] if self.ping_interval else []
        try:
            await super()._handle_stream(connection)
        finally:
            group.discard(connection)
            self.stalled.discard(connection)
            for task in tasks:
                task.cancel()

    async def send(self, connection: ServerConnection, message: dict[str, Any] | str) -> None:
        if connection in self.stalled:
            await connection.wait_closed()  # then the send below raises ConnectionClosed
        if (held := self.paused_until - time.monotonic()) > 0:
            await asyncio.sleep(held)
        while self.injected and connection in self.connections:  # injected frames go out on a kline connection
            await connection.send(self.injected.popleft())
        kline = isinstance(message, dict) and message["data"].get("e") == "kline"
        if kline and self._skipped(message):
            self.closes_skipped += 1
            return
        if self.drop_rate and self._random.random() < self.drop_rate:
            self.frames_dropped += 1
            return
        await super().send(connection, message)
        if kline and message["data"]["k"]["x"]:
            newest = self.closes_sent_on.setdefault(connection, {})
            newest[message["data"]["s"]] = max(newest.get(message["data"]["s"], 0), message["data"]["k"]["t"])

    def newest_closes_sent(self) -> dict[str, int]:
        """Per symbol, the open time (ms) of the newest close sent on a connection still open."""
        newest: dict[str, int] = {}
        for connection in list(self.connections):
            for symbol, open_ms in self.closes_sent_on.get(connection, {}).copy().items():
                newest[symbol] = max(newest.get(symbol, 0), open_ms)
        return newest

    def _skipped(self, message: dict[str, Any]) -> bool:
        k = message["data"]["k"]
        return k["x"] and self.series.index_at(k["t"]) in self.stream_skips

    async def _send_closes(
        self, connection: ServerConnection, symbols: list[str], indexes: range, *, interval: str | None = None
    ) -> None:
        await super()._send_closes(connection, symbols, indexes, interval=interval)
        if self.late_repeat:
            for index in indexes:
                for symbol in symbols:
                    old = self.series.kline(symbol, index - self.late_repeat)
                    await self.send(connection, old.stream_event(closed=True, event_ms=self.now_ms()))

    def _watch_incoming(self, connection: ServerConnection) -> None:
        """Count what the client sends — pongs included, as Binance does — and cut it off above the limit."""
        window: deque[float] = deque()
        process_event = connection.process_event

        def counting(event: Any) -> None:
            process_event(event)
            if not isinstance(event, Frame) or event.opcode not in COUNTED:
                return
            if event.opcode is Opcode.PONG:
                self.pong_frames += 1
            else:
                self.client_messages += 1
            now = time.monotonic()
            window.append(now)
            while window[0] < now - 1:
                window.popleft()
            if len(window) > INCOMING_LIMIT_PER_SECOND and connection not in self.over_limit:
                self.over_limit.add(connection)
                self._spawn(connection.close(1008, "too many messages"))

        connection.process_event = counting  # type: ignore[method-assign]

    async def _ping(self, connection: ServerConnection) -> None:
        """Ping every ``ping_interval``; close the link when a ping is not answered within ``pong_timeout``.

        A pong acknowledges its ping and every earlier one (RFC 6455 allows answering only the latest).
        """
        try:
            while True:
                await asyncio.sleep(self.ping_interval)
                waiter = await connection.ping()
                self.pings += 1
                self._spawn(self._await_pong(connection, waiter))
        except ConnectionClosed:
            return

    async def _await_pong(self, connection: ServerConnection, waiter: asyncio.Future) -> None:
        try:
            await asyncio.wait_for(waiter, self.pong_timeout)
        except TimeoutError:
            self.pong_timeouts += 1
            await connection.close(1008, "pong timeout")
        except ConnectionClosed:
            return
        else:
            self.pongs += 1

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if request.headers.get("Upgrade", "").lower() == "websocket":
            streams = [s for s in query.get("streams", "").split("/") if s]
            if time.monotonic() < self.refused_until:
                self.rejected_handshakes += 1
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "maintenance\n")
            if any("@kline_" in stream for stream in streams) or not streams:
                self.streams_per_connect.append(len(streams))
            if self.max_streams is not None and len(streams) > self.max_streams:
                self.rejected_handshakes += 1
                return connection.respond(HTTPStatus.BAD_REQUEST, "too many streams\n")
            return super()._process_request(connection, request)
        if parts.path == "/fapi/v1/klines" and self.rest_faults:
            status, retry_after = self.rest_faults.popleft()
            self.rest_calls.append(RestCall(time.monotonic(), parts.path, query, status))
            response = json_response(connection, HTTPStatus(status), {"code": -1003, "msg": "Too many requests."})
            if retry_after is not None:
                response.headers["Retry-After"] = retry_after
            return response
        response = super()._process_request(connection, request)
        self.rest_calls.append(RestCall(time.monotonic(), parts.path, query, response.status_code))
        return response

    # -- the loop thread ---------------------------------------------------------------
    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _in_loop(self, callback: Any) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(callback)

    def _await(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=5)


class ExchangeThread:
    """Run an exchange on its own event loop in a daemon thread: ``with ExchangeThread(fake) as urls:``."""

    def __init__(self, exchange: SimulatedExchange) -> None:
        self.exchange = exchange
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-exchange", daemon=True)
        self.port = 0

    def __enter__(self) -> ExchangeThread:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.exchange.start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.exchange.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/market"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class BrokenRest:
    """A raw TCP front for the fake exchange's REST that breaks HTTP the ways networks and proxies do.

    Each connection takes the next fault from :attr:`faults` (FIFO); with none
    left, the request is passed to ``backend`` (``host``, ``port``) and its
    answer relayed. Faults: ``truncated`` (a body shorter than its
    Content-Length, then close: ``IncompleteRead``), ``garbage`` (a bad status
    line), ``reset`` (TCP RST), ``empty`` (close without answering),
    ``not-json`` (200 with an HTML body), ``stall`` (answer nothing until the
    client gives up).
    """

    FAULTS = ("truncated", "garbage", "reset", "empty", "not-json", "stall")

    def __init__(self, backend: tuple[str, int], *, stall_seconds: float = 5.0) -> None:
        self.backend = backend
        self.stall_seconds = stall_seconds
        self.faults: deque[str] = deque()
        self.served: list[str] = []  # what each connection got: a fault's name or "relayed"
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="broken-rest", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BrokenRest:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._server.close()

    def _accept(self) -> None:
        self._server.settimeout(0.1)  # a blocked accept() does not notice close()
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = client.recv(65536)
                if not chunk:
                    return
                request += chunk
            fault = self.faults.popleft() if self.faults else None
            self.served.append(fault or "relayed")
            if fault == "truncated":
                client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n[[1,")
            elif fault == "garbage":
                client.sendall(b"HTTP/1.1 TWO HUNDRED\r\n\r\nnonsense")
            elif fault == "reset":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif fault == "not-json":
                # A complete answer; the front serves one request a connection, and says so (as HTTP asks of
                # a server that closes), else a client may reuse the closed connection and be reset.
                body = b"<html><body>502 Bad Gateway</body></html>"
                head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                client.sendall(head % len(body) + body)
            elif fault == "stall":
                self._closed.wait(self.stall_seconds)
            elif fault is None:
                with socket.create_connection(self.backend, timeout=10) as upstream:
                    upstream.sendall(request.replace(b"Connection: keep-alive", b"Connection: close"))
                    while chunk := upstream.recv(65536):
                        client.sendall(chunk)
