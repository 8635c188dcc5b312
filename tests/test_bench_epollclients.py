"""The scale scenario's epoll load client: it counts and checks every frame, whole or split, and times arrival."""

from __future__ import annotations

import json
import socket
import threading
import time

from bench.epollclients import IdleSockets
from bench.wsclient import _ACCEPT

COIN = "BTCUSDT"


def text_frame(payload: dict) -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode()
    assert 126 <= len(data) < 65536, len(data)  # the shape of the book's frames
    return bytes((0x81, 126)) + len(data).to_bytes(2, "big") + data


def frame(coin: str, close: float) -> bytes:
    return text_frame({"coin": coin, "values": [1.5] * 20 + [close], "operations": ["BUY"] * 21})


class ScriptedServer:
    """Accepts websocket upgrades on 127.0.0.1 and sends the initial frames; the test sends the rest."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.peers: list[socket.socket] = []
        self.received: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                peer, _ = self.listener.accept()
            except OSError:
                return
            request = b""
            while b"\r\n\r\n" not in request:
                request += peer.recv(4096)
            head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            peer.sendall(head + b"Sec-WebSocket-Accept: " + _ACCEPT + b"\r\n\r\n")
            self.peers.append(peer)
            peer.sendall(b"".join(frame(f"COIN{i}USDT", 1.0) for i in range(5)))

    def close(self) -> None:
        self.listener.close()
        for peer in self.peers:
            peer.close()


def poll_until(sockets: IdleSockets, condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        sockets.poll(0.05)


def test_every_frame_counted_and_checked_whole_split_or_several_per_read():
    server = ScriptedServer()
    sockets = IdleSockets([server.port], 4)
    try:
        assert sockets.open(concurrency=2, time_limit=10) < 10
        assert (sockets.ready, sockets.errors) == (4, 0)
        sockets.clear()
        whole, split, several, wrong = server.peers
        sent_at = time.time()
        whole.sendall(frame(COIN, 42.5))
        data = frame(COIN, 42.5)
        split.sendall(data[:3])
        poll_until(sockets, lambda: sockets.frames == 1, "the whole frame")
        split.sendall(data[3:])
        several.sendall(frame("ETHUSDT", 42.5) + bytes((0x89, 1)) + b"p" + frame(COIN, 42.5))
        wrong.sendall(frame(COIN, 41.0))
        poll_until(sockets, lambda: sockets.frames == 5, "every frame")
        assert several.recv(100) == bytes((0x8A, 0x81)) + b"\x00\x00\x00\x00p"  # the ping answered, masked

        got, missing = sockets.arrivals(COIN, 42.5)
        assert missing == 1  # the client whose frame ends at another close
        assert len(got) == 3
        assert all(port == server.port and sent_at <= received <= read for port, received, read in got)
        assert (sockets.updated, sockets.frames - sockets.updated) == (4, 1)  # one extra frame
    finally:
        sockets.close(time_limit=0.5)
        server.close()


def test_a_client_the_server_closes_counts_as_dropped_and_a_refused_connect_as_an_error():
    server = ScriptedServer()
    closed_port = socket.create_server(("127.0.0.1", 0))
    refused = closed_port.getsockname()[1]
    closed_port.close()
    sockets = IdleSockets([server.port, refused], 2)
    try:
        sockets.open(concurrency=2, time_limit=10)
        assert (sockets.ready, sockets.errors) == (1, 1)
        assert "ECONNREFUSED" in sockets.first_error
        server.peers[0].sendall(bytes((0x88, 2)) + b"\x03\xe8")
        poll_until(sockets, lambda: sockets.dropped == 1, "the server's close")
        assert sockets.ready == 0
    finally:
        sockets.close(time_limit=0.5)
        server.close()
