"""Thousands of idle ``/`` clients on one ``epoll``, taking less of the CPU the server they measure needs.

The scale scenario's load clients share the machine's cores with the daphnes
they time. :mod:`bench.wsclient` costs an asyncio protocol, a ``bytearray``
copy and a parse per frame; here each client is a non-blocking socket read
straight off ``epoll``: a frame that arrives whole (nearly all of them) costs
one ``recvmsg``, which also brings the kernel's receive time of its bytes
(``SO_TIMESTAMPNS``: the arrival, whenever this process gets to read it), and a
header check; its payload is kept as the received bytes and checked when asked
(:meth:`IdleSockets.arrivals`), decoded once per distinct payload. Anything
else (a frame split over reads, several frames in one read, pings, the
server's close) goes through the full parser. The
subset of RFC 6455 is :mod:`bench.wsclient`'s: the upgrade, unmasked server
frames, pings answered, the close handshake.
"""

from __future__ import annotations

import contextlib
import errno
import json
import select
import socket
import struct
import time
from collections.abc import Callable

from bench.wsclient import _ACCEPT, _CLOSE, _NORMAL_CLOSURE, _PING, _PONG, _TEXT, HOST, _handshake, client_frame

READ_BYTES = 1 << 18
SO_TIMESTAMPNS = 35  # Linux: each read says when the kernel received its bytes (struct timespec)
STAMP_BYTES = socket.CMSG_SPACE(16)
CONNECTING, UPGRADING, INITIAL, OPEN, GONE = range(5)
_EVENTS = select.EPOLLIN | select.EPOLLRDHUP
_TIMESPEC = struct.Struct("@qq")


class Client:
    __slots__ = ("sock", "port", "state", "buffer", "initial", "updates", "started")

    def __init__(self, sock: socket.socket, port: int) -> None:
        self.sock = sock
        self.port = port
        self.state = CONNECTING
        self.buffer = b""  # bytes of an incomplete frame (or the upgrade response)
        self.initial = 0  # text frames received before ``ready``
        self.updates: list[tuple[float, float, bytes, int]] = []  # (received, read: wall times; bytes, payload at)
        self.started = time.monotonic()


def _arrived(stamps: list[tuple[int, int, bytes]]) -> float:
    """The kernel's receive time of a read's bytes (wall clock), or now if it gave none."""
    for level, kind, value in stamps:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = _TIMESPEC.unpack(value)
            return seconds + nanoseconds * 1e-9
    return time.time()


def close_value(payload: bytes, coin: str) -> float | None:
    """The newest value of ``coin``'s frame (``None``: another coin's, or no values)."""
    frame = json.loads(payload)
    if frame.get("coin") != coin or not frame.get("values"):
        return None
    return frame["values"][-1]


class IdleSockets:
    """Clients on ``/`` of the given ports, each counted ready after its ``initial`` frames."""

    def __init__(self, ports: list[int], count: int, *, initial: int = 5) -> None:
        self.epoll = select.epoll()
        self.clients: dict[int, Client] = {}
        self.todo = [ports[i % len(ports)] for i in range(count)]
        self.initial = initial
        self.ready = 0
        self.errors = 0
        self.first_error = ""
        self.dropped = 0
        self.frames = 0  # text frames since :meth:`clear`
        self.updated = 0  # clients with at least one since :meth:`clear`

    # -- opening ----------------------------------------------------------------
    def open(self, concurrency: int, time_limit: float, on_idle: Callable[[], None] = lambda: None) -> float:
        """Connect every client, ``concurrency`` at a time; return the seconds it took."""
        began = time.monotonic()
        while self.todo or self._opening():
            while self.todo and self._opening() < concurrency:
                self._connect(self.todo.pop())
            self.poll(0.2)
            now = time.monotonic()
            for client in [c for c in self.clients.values() if c.state != OPEN and now - c.started > time_limit]:
                self._fail(client, f"TimeoutError: not ready after {time_limit:.0f} s")
            on_idle()
        return time.monotonic() - began

    def _opening(self) -> int:
        return len(self.clients) - self.ready

    def _connect(self, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        client = Client(sock, port)
        self.clients[sock.fileno()] = client
        self.epoll.register(sock.fileno(), select.EPOLLOUT | _EVENTS)
        code = sock.connect_ex((HOST, port))
        if code not in (0, errno.EINPROGRESS):
            self._fail(client, f"ConnectionError: {errno.errorcode.get(code, code)}")

    def _connected(self, client: Client) -> None:
        code = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._fail(client, f"ConnectionError: {errno.errorcode.get(code, code)}")
            return
        client.state = UPGRADING
        client.sock.send(_handshake(client.port, "/"))
        self.epoll.modify(client.sock.fileno(), _EVENTS)

    def _fail(self, client: Client, error: str) -> None:
        if client.state != OPEN:
            self.errors += 1
            self.first_error = self.first_error or error
        self._drop(client)

    def _drop(self, client: Client) -> None:
        fd = client.sock.fileno()
        if client.state == OPEN:
            self.dropped += 1
            self.ready -= 1
        client.state = GONE
        self.clients.pop(fd, None)
        if fd >= 0:
            self.epoll.unregister(fd)
            client.sock.close()

    # -- reading ----------------------------------------------------------------
    def poll(self, timeout: float) -> list[int]:
        """Read every socket that is ready within ``timeout``; return the other ready fds (e.g. stdin)."""
        others = []
        clients = self.clients
        for fd, event in self.epoll.poll(timeout):
            client = clients.get(fd)
            if client is None:
                others.append(fd)
                continue
            if client.state == CONNECTING:
                self._connected(client) if event & select.EPOLLOUT else self._fail(client, "ConnectionError: closed")
                continue
            try:
                data, stamps, _flags, _address = client.sock.recvmsg(READ_BYTES, STAMP_BYTES)
            except OSError as exc:
                self._fail(client, f"{type(exc).__name__}: {exc}")
                continue
            if not data:
                self._fail(client, "ConnectionError: closed by the server")
                continue
            arrived = _arrived(stamps)
            # One whole unfragmented text frame of 126-65535 bytes, nothing before or after: most of a fan-out.
            if (
                client.state == OPEN
                and not client.buffer
                and len(data) > 4
                and data[0] == 0x81
                and data[1] == 126
                and len(data) == 4 + (data[2] << 8 | data[3])
            ):
                self._text(client, arrived, data, 4)
            else:
                self._parse(client, arrived, client.buffer + data)
        return others

    def _text(self, client: Client, arrived: float, data: bytes, start: int) -> None:
        self.frames += 1
        if not client.updates:
            self.updated += 1
        client.updates.append((arrived, time.time(), data, start))

    def _parse(self, client: Client, arrived: float, buffer: bytes) -> None:
        if client.state == UPGRADING:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                client.buffer = buffer
                return
            head = buffer[:end]
            if not head.startswith(b"HTTP/1.1 101") or _ACCEPT not in head:
                self._fail(client, "HandshakeFailed: " + head.split(b"\r\n", 1)[0].decode(errors="replace"))
                return
            buffer = buffer[end + 4 :]
            client.state = INITIAL if self.initial else OPEN
            if not self.initial:
                self.ready += 1
        offset = 0
        while len(buffer) - offset >= 2:
            first, length, start = buffer[offset], buffer[offset + 1] & 0x7F, offset + 2
            if length == 126:
                if len(buffer) - offset < 4:
                    break
                length, start = int.from_bytes(buffer[offset + 2 : offset + 4], "big"), offset + 4
            elif length == 127:
                if len(buffer) - offset < 10:
                    break
                length, start = int.from_bytes(buffer[offset + 2 : offset + 10], "big"), offset + 10
            if len(buffer) < start + length:
                break
            offset = start + length
            if not self._frame(client, arrived, first, buffer[start:offset]):
                return
        client.buffer = buffer[offset:]

    def _frame(self, client: Client, arrived: float, first: int, payload: bytes) -> bool:
        """Handle one whole frame; whether the client is still there."""
        opcode = first & 0x0F
        if not first & 0x80:
            self._fail(client, "ConnectionError: fragmented frames are not expected from a feed")
            return False
        if opcode == _TEXT:
            if client.state == OPEN:
                self._text(client, arrived, payload, 0)
            else:
                client.initial += 1
                if client.initial >= self.initial:
                    client.state = OPEN
                    self.ready += 1
        elif opcode == _PING:
            client.sock.send(client_frame(_PONG, payload[:125]))
        elif opcode == _CLOSE:
            with contextlib.suppress(OSError):
                client.sock.send(client_frame(_CLOSE, payload[:2]))
            self._fail(client, "ConnectionError: closed by the server")
            return False
        return True

    # -- results ----------------------------------------------------------------
    def clear(self) -> None:
        """Forget the frames received so far."""
        for client in self.clients.values():
            client.updates.clear()
        self.frames = self.updated = 0

    def arrivals(self, coin: str, close: float) -> tuple[list[tuple[int, float, float]], int]:
        """Each client's first frame of ``coin`` ending at ``close`` as (port, received, read), and how many lack one.

        ``received`` is when the client's kernel had the frame, ``read`` when this process read it (wall
        clock). Every payload is checked; equal payloads (one frame to every client) are decoded once.
        """
        values: dict[bytes, float | None] = {}
        got, missing = [], 0
        for client in self.clients.values():
            if client.state != OPEN:
                continue
            for arrived, read, data, start in client.updates:
                payload = data[start:] if start else data
                value = values.get(payload, values)
                if value is values:
                    value = values[payload] = close_value(payload, coin)
                if value == close:
                    got.append((client.port, arrived, read))
                    break
            else:
                missing += 1
        return got, missing

    # -- closing ----------------------------------------------------------------
    def close(self, time_limit: float = 10.0) -> None:
        """The close handshake with every client: a close frame each, then wait for the server to end them."""
        for client in list(self.clients.values()):
            try:
                client.sock.send(client_frame(_CLOSE, _NORMAL_CLOSURE))
            except OSError:
                self._drop(client)
        deadline = time.monotonic() + time_limit
        while self.clients and time.monotonic() < deadline:
            for fd, _ in self.epoll.poll(0.2):
                client = self.clients.get(fd)
                if client is None:
                    continue
                try:
                    data = client.sock.recv(READ_BYTES)
                except OSError:
                    data = b""
                if not data:
                    self._drop(client)
        for client in list(self.clients.values()):
            self._drop(client)
        self.epoll.close()
