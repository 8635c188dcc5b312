"""A lean asyncio websocket client for load generation: it must not be the bottleneck.

One :class:`asyncio.Protocol` per connection speaking the RFC 6455 subset a read-only
feed needs (upgrade, unmasked text frames, ping, close handshake); every
``data_received`` is timestamped once; no extensions, so nothing is compressed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

HOST = "127.0.0.1"
_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key; the accept value is fixed too
_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA
_NORMAL_CLOSURE = b"\x03\xe8"


class HandshakeFailed(ConnectionError):
    pass


def _handshake(port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {_KEY.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (an all-zero mask leaves the payload as is)."""
    size = len(payload)
    head = bytes((0x80 | opcode, 0x80 | size)) if size < 126 else bytes((0x80 | opcode, 0xFE)) + size.to_bytes(2, "big")
    return head + b"\x00\x00\x00\x00" + payload


class FeedConnection(asyncio.Protocol):
    """One client connection; records each text frame with the wall and monotonic time it arrived.

    ``initial`` is how many frames make the connection "ready" (the five
    payloads sent on connect); ``ready`` resolves with the monotonic time the
    last of them arrived. Later frames are kept in ``updates`` as
    ``(wall_time, payload)`` when ``keep_updates`` is set.
    """

    def __init__(self, port: int, *, initial: int = 5, path: str = "/", keep_updates: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self.port, self.path, self.initial, self.keep_updates = port, path, initial, keep_updates
        self.ready: asyncio.Future[float] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.frames: list[bytes] = []
        self.updates: list[tuple[float, bytes]] = []
        self.transport: asyncio.Transport | None = None
        self.close_payload: bytes | None = None  # the server's close frame: code and reason
        self.closed_at = 0.0  # monotonic time it arrived
        self._buffer, self._upgraded, self._close_sent = bytearray(), False, False

    # -- asyncio.Protocol ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(_handshake(self.port, self.path))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        mono = time.monotonic()
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            if not head.startswith(b"HTTP/1.1 101") or _ACCEPT not in head:
                self._fail(HandshakeFailed(head.split(b"\r\n", 1)[0].decode(errors="replace")))
                return
            del buffer[: end + 4]
            self._upgraded = True
            if self.initial == 0:
                self.ready.set_result(mono)
        # Frames are parsed by offset and the buffer cut once per chunk: cutting it per frame moves the rest
        # of the chunk each time (40,000 frames a second reach the relay's one client process).
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            first, length, start = buffer[pos], buffer[pos + 1] & 0x7F, pos + 2
            if length >= 126:  # a 16-bit or a 64-bit length follows
                width = 2 if length == 126 else 8
                if size < start + width:
                    break
                length, start = int.from_bytes(buffer[start : start + width], "big"), start + width
            if size < start + length:
                break
            payload = bytes(buffer[start : start + length])
            pos = start + length
            self._frame(first, payload, mono)
        del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before the initial frames"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- frames ---------------------------------------------------------------
    def _frame(self, first: int, payload: bytes, mono: float) -> None:
        opcode = first & 0x0F
        if not first & 0x80:
            self._fail(ConnectionError("fragmented frames are not expected from a feed"))
        elif opcode == _TEXT:
            if len(self.frames) < self.initial:
                self.frames.append(payload)
                if len(self.frames) == self.initial:
                    self.ready.set_result(mono)
            else:
                self.on_text(payload)
        elif opcode == _PING:
            self.transport.write(client_frame(_PONG, payload[:125]))
        elif opcode == _CLOSE:
            self.close_payload, self.closed_at = payload, mono
            if not self._close_sent:
                self._close_sent = True
                self.transport.write(client_frame(_CLOSE, payload[:2]))
            self.transport.close()

    def on_text(self, payload: bytes) -> None:
        """A text frame after the initial ones: kept in ``updates`` with its wall time if ``keep_updates``."""
        if self.keep_updates:
            self.updates.append((time.time(), payload))

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    # -- closing ------------------------------------------------------------
    async def close(self, time_limit: float = 5.0) -> None:
        """The close handshake: send a close frame, wait for the server to end the connection."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self._close_sent:
            self._close_sent = True
            self.transport.write(client_frame(_CLOSE, _NORMAL_CLOSURE))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), time_limit)
        except TimeoutError:
            self.transport.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_connection(
    port: int, *, time_limit: float, factory: Callable[[], FeedConnection] | None = None
) -> tuple[FeedConnection, float, float]:
    """Connect and wait for the initial frames; return (connection, start, ready) monotonic times."""
    loop = asyncio.get_running_loop()
    connection = factory() if factory else FeedConnection(port)
    start = time.monotonic()
    try:
        async with asyncio.timeout(time_limit):
            await loop.create_connection(lambda: connection, HOST, port)
            ready = await connection.ready
    except BaseException:
        connection.abort()
        raise
    return connection, start, ready
