"""daphne_prepared: a frame sent to many daphne connections is framed once and written to each at once.

What a client receives must not change by a byte; what the patch relies on in
daphne and autobahn is inspected here, so an upgrade that changes it fails a
test instead of sending something else.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage, WebSocketFactory, WebSocketProtocol
from daphne import server as daphne_server
from daphne import ws_protocol
from daphne.server import Server  # already loaded in every Django process: "daphne" is an installed app
from twisted.internet import _newtls, abstract, tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport

from binancews import daphne_patches
from binancews.daphne_patches import inbox as daphne_inbox
from binancews.daphne_patches import prepared as daphne_prepared
from klines.serving.delivery import CLOSE, Delivery
from klines.serving.immediate import immediate_send
from klines.serving.metrics import FRAMES_SENT, ROOT
from klines.serving.outbox import Outbox
from klines.testing.servers import daphne, free_port, service_env, stop_process
from tests.helpers import SYMBOLS, store_klines

TEXTS = ["x", "é" * 62, "{" + "1" * 124 + "}", "y" * 126, "z" * 65535, "€" * 30000]  # every length encoding


def open_protocol(factory: WebSocketServerFactory) -> tuple[WebSocketProtocol, StringTransport]:
    """autobahn's server protocol after a real opening handshake, its transport emptied."""
    factory.protocol = WebSocketServerProtocol  # twisted's flavour, daphne's protocol's base
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    key = base64.b64encode(os.urandom(16))
    protocol.dataReceived(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert protocol.state == protocol.STATE_OPEN
    transport.clear()
    return protocol, transport


def daphne_send(server: Server, protocol: WebSocketProtocol) -> partial:
    """The ``send`` daphne gives a connection's application (``Server.create_application``)."""
    server.connections[protocol] = {}
    return partial(server.handle_reply, protocol)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Server:
    monkeypatch.delattr(Server.handle_reply, "send_text_now", raising=False)
    server = Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])  # never run
    server.connections = {}
    return server


def test_the_frame_written_is_byte_for_byte_what_autobahn_sends(server: Server) -> None:
    assert daphne_prepared.install()
    factory = WebSocketServerFactory()
    for text in TEXTS:
        sent_by_autobahn, theirs = open_protocol(factory)
        sent_by_autobahn.sendMessage(text.encode("utf8"), False)  # what daphne's serverSend does
        prepared, ours = open_protocol(factory)
        immediate_send(send := daphne_send(server, prepared))(send, text)
        assert ours.value() == theirs.value()


def test_the_same_text_is_framed_once_for_every_connection(server: Server) -> None:
    daphne_prepared.install()
    factory = WebSocketServerFactory()
    text = json.dumps({"coin": "BTCUSDT", "values": list(range(100))})
    framed: list[bytes] = []
    prepare = factory.prepareMessage
    factory.prepareMessage = lambda payload: framed.append(payload) or prepare(payload)
    transports = []
    for _ in range(3):
        protocol, transport = open_protocol(factory)
        transports.append(transport)
        immediate_send(send := daphne_send(server, protocol))(send, text)
    assert framed == [text.encode()]
    assert len({t.value() for t in transports}) == 1
    other = "".join(text)  # equal text, another object: framed again, not mistaken for a stale id
    immediate_send(send)(send, other)
    assert len(framed) == 2


def test_a_connection_daphne_counts_as_gone_gets_nothing(server: Server) -> None:
    daphne_prepared.install()
    protocol, transport = open_protocol(WebSocketServerFactory())
    send = daphne_send(server, protocol)
    server.connections[protocol]["disconnected"] = True
    immediate_send(send)(send, "late")
    assert transport.value() == b""


def test_other_versions_run_unpatched_with_one_line(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(Server.handle_reply, "send_text_now", raising=False)
    other_twisted = {**daphne_prepared.REQUIRES, "Twisted": "27.1.0"}
    monkeypatch.setattr(daphne_patches, "PATCHES", (daphne_prepared,))
    with caplog.at_level(logging.WARNING, logger=daphne_patches.__name__):
        assert daphne_patches.apply(version_of=other_twisted.get) == {"prepared": False}
    assert immediate_send(daphne_send(server, object())) is None
    assert len(caplog.records) == 1
    assert "daphne patch prepared is off, running unpatched" in caplog.records[0].getMessage()


def test_without_daphne_nothing_is_patched(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(__import__("sys").modules, daphne_prepared.SERVER_MODULE)
    assert not daphne_prepared.install()
    assert immediate_send(daphne_send(server, object())) is None


async def test_an_outbox_hands_its_frames_over_before_the_offer_returns() -> None:
    sent: list[str] = []
    frames = {symbol: f"frame of {symbol}" for symbol in SYMBOLS}
    newest = dict.fromkeys(SYMBOLS, datetime(2026, 1, 1, tzinfo=UTC))  # each frame's newest close

    async def send(frame: str) -> None:
        raise AssertionError("the server sends at once: no task, no await")

    async def too_slow(owed: int) -> None:
        return None

    counted = FRAMES_SENT.labels(ROOT)._value.get()
    outbox = Outbox(
        frames.__getitem__, newest.__getitem__, send, max_owed=1 << 20, too_slow=too_slow, send_now=sent.append
    )
    outbox.offer(SYMBOLS)
    outbox.start()
    assert sent == [frames[s] for s in SYMBOLS]
    frames["BTCUSDT"], newest["BTCUSDT"] = "the next close", newest["BTCUSDT"] + timedelta(minutes=1)
    delivery = Delivery(CLOSE, started=0.0)
    outbox.offer(["BTCUSDT"], delivery)
    delivery.seal()
    assert sent[-1] == "the next close"
    assert (delivery.owed, outbox.owed) == (0, 0)
    assert FRAMES_SENT.labels(ROOT)._value.get() == counted + len(SYMBOLS) + 1
    await asyncio.sleep(0)


@pytest.fixture
def tcp_connection() -> Iterator[tuple[tcp.Server, socket.socket]]:
    """twisted's accepted TCP connection (what daphne's protocol writes to) on a real socket, and its peer."""
    from twisted.internet import reactor  # daphne's asyncio reactor, installed when daphne.server was imported

    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        accepted, address = listener.accept()
    accepted.setblocking(False)
    transport = tcp.Server(accepted, Protocol(), address, None, 1, reactor)
    yield transport, peer
    transport.stopReading()
    transport.stopWriting()
    accepted.close()
    peer.close()


def test_a_frame_reaches_the_socket_at_once_when_nothing_waits_before_it(
    server: Server, tcp_connection: tuple[tcp.Server, socket.socket]
) -> None:
    assert daphne_prepared.install()
    transport, peer = tcp_connection
    daphne_prepared.write_at_once(transport, b"first")
    peer.settimeout(5)
    assert peer.recv(100) == b"first"  # the reactor has not run: twisted's write would still hold it
    assert transport._tempDataLen == 0


def test_what_the_socket_does_not_take_waits_in_twisted_and_keeps_the_order(
    server: Server, tcp_connection: tuple[tcp.Server, socket.socket]
) -> None:
    assert daphne_prepared.install()
    transport, peer = tcp_connection
    big = bytes(range(256)) * (1 << 15)  # 8 MiB: more than the socket buffers take
    daphne_prepared.write_at_once(transport, big)
    waiting = transport._tempDataLen
    assert 0 < waiting < len(big)
    daphne_prepared.write_at_once(transport, b"after")  # queued behind the rest, not sent ahead of it
    assert transport._tempDataLen == waiting + 5
    assert b"".join(transport._tempDataBuffer) == big[len(big) - waiting :] + b"after"


def test_what_the_patch_relies_on_in_daphne_and_autobahn_is_unchanged() -> None:
    # daphne gives the application partial(server.handle_reply, protocol), which skips a gone connection ...
    # (as daphne_inbox's replacement of create_application does; other patches wrap, so unwrap them)
    assert "send=partial(self.handle_reply, protocol)" in inspect.getsource(daphne_server)
    assert "send=partial(server.handle_reply, protocol)" in inspect.getsource(daphne_inbox.create_application)
    reply = inspect.getsource(inspect.unwrap(Server.handle_reply))
    assert 'if protocol not in self.connections or self.connections[protocol].get(\n            "disconnected"' in reply
    assert "protocol.handle_reply(message)" in reply
    # ... and its protocol sends a text as autobahn's sendMessage of its UTF-8 bytes, uncompressed or not.
    assert 'self.serverSend(message["text"], False)' in inspect.getsource(
        inspect.unwrap(ws_protocol.WebSocketProtocol.handle_reply)
    )
    assert 'self.sendMessage(content.encode("utf8"), binary)' in inspect.getsource(
        ws_protocol.WebSocketProtocol.serverSend
    )
    # autobahn: a prepared message on an uncompressed connection is sendData of payloadHybi, which, with
    # nothing queued and no chopsize, is transport.write of it; the state and queue the patch checks.
    prepared = inspect.getsource(WebSocketProtocol.sendPreparedMessage)
    assert "if self._perMessageCompress is None or preparedMsg.doNotCompress:" in prepared
    assert "self.sendData(preparedMsg.payloadHybi)" in prepared
    data = inspect.getsource(WebSocketProtocol.sendData)
    assert "if sync or len(self.send_queue) > 0:" in data
    assert "self.transport.write(data)" in data
    assert inspect.signature(WebSocketFactory.prepareMessage).parameters.keys() == {
        "self",
        "payload",
        "isBinary",
        "doNotCompress",
    }
    assert 'self.payloadHybi = b"".join(' in inspect.getsource(PreparedMessage.__init__)
    assert "applyMask = not self.isServer" in inspect.getsource(WebSocketFactory.prepareMessage)
    assert "if self.state != WebSocketProtocol.STATE_OPEN:" in inspect.getsource(WebSocketProtocol.sendMessage)
    # twisted: a plain TCP connection's write buffers in _tempDataBuffer/dataBuffer (nothing else holds bytes
    # back), writes to its socket with socket.send, and goes through TLS only when TLS is set.
    assert "if self.TLS:" in inspect.getsource(_newtls.ConnectionMixin.write)
    write = inspect.getsource(abstract.FileDescriptor.write)
    assert "if not self.connected or self._writeDisconnected:" in write
    assert "self._tempDataBuffer.append(data)" in write
    assert "self._tempDataLen += len(data)" in write
    assert 'self.dataBuffer = b"".join(self._tempDataBuffer)' in inspect.getsource(abstract.FileDescriptor.doWrite)
    assert "untilConcludes(self.socket.send, limitedData)" in inspect.getsource(tcp.Connection.writeSomeData)
    assert tcp.Server.write is _newtls.ConnectionMixin.write


def read_frames(port: int, count: int) -> bytes:
    """``count`` websocket frames of ``/`` as they came over the wire (a raw socket, no client library)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Origin: http://127.0.0.1\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, data = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        frames = 0
        wire = data
        while frames < count:
            while len(data) < 2 or len(data) < _frame_length(data):
                chunk = sock.recv(65536)
                assert chunk, "daphne closed the connection"
                data += chunk
                wire += chunk
            data = data[_frame_length(data) :]
            frames += 1
        return wire[: len(wire) - len(data)]


def _frame_length(data: bytes) -> int:
    if len(data) < 4:
        return 1 << 30
    size = data[1] & 0x7F
    if size == 126:
        return 4 + int.from_bytes(data[2:4], "big")
    if size == 127:
        return 10 + int.from_bytes(data[2:10], "big") if len(data) >= 10 else 1 << 30
    return 2 + size


def rfc6455_text_frames(texts: list[str]) -> bytes:
    """Unmasked, unfragmented text frames, each length in its shortest encoding (RFC 6455 5.2)."""
    wire = b""
    for text in texts:
        payload = text.encode()
        if len(payload) <= 125:
            head = bytes([0x81, len(payload)])
        elif len(payload) <= 0xFFFF:
            head = bytes([0x81, 126]) + len(payload).to_bytes(2, "big")
        else:
            head = bytes([0x81, 127]) + len(payload).to_bytes(8, "big")
        wire += head + payload
    return wire


@pytest.mark.e2e
def test_under_daphne_the_frames_of_slash_are_the_same_bytes_for_every_client(
    secantus, database: str, tmp_path: Path
) -> None:
    env = service_env(secantus.uri, database)
    store_klines(env, {symbol: range(11) for symbol in SYMBOLS})
    port = free_port()
    log = tmp_path / "daphne.log"
    server = daphne(port, env, log)
    try:
        first, second = read_frames(port, 5), read_frames(port, 5)
    finally:
        stop_process(server)
    assert first == second
    texts, data = [], first
    while data:
        length = _frame_length(data)
        header = 2 if data[1] & 0x7F < 126 else 4 if data[1] & 0x7F == 126 else 10
        texts.append(data[header:length].decode())
        data = data[length:]
    assert [json.loads(t)["coin"] for t in texts] == SYMBOLS
    assert first == rfc6455_text_frames(texts)
    assert "Traceback" not in log.read_text()
