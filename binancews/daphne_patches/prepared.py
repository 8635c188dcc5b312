"""Send a text frame many daphne connections get, framed once, to each socket at once, without awaiting.

The feed sends the same frame (the book's one ``str``) to thousands of
connections. Through ASGI each costs a task, channels' ``send``, daphne's
``handle_reply`` coroutine and ``serverSend`` (which encodes the text again),
and autobahn's ``sendMessage`` → ``sendFrame`` → ``sendData`` with its checks,
counters and debug calls; then Twisted's ``write`` buffers the bytes and
watches the socket for writability (an epoll change to add the writer, a
callback, another to remove it). :func:`install` gives daphne's ``send`` a
synchronous side door, :func:`send_text_now`: autobahn's broadcast
optimisation, ``factory.prepareMessage``, frames a text once (kept while the
same ``str`` object is sent, keyed by its identity), and each open,
uncompressed connection with nothing queued in autobahn gets those bytes as
``sendPreparedMessage`` → ``sendData`` would hand them to ``transport.write``,
except that :func:`write_at_once` sends what the socket takes at once when
nothing waits in Twisted's buffer before it, as Twisted's ``writeSomeData``
would later. Anything else (a connection not open, compression, TLS, bytes
already waiting) goes the usual way. The bytes on the wire are the same.
Measured in bench/README.md ("Many clients": CPU per frame 52.9 → 21.4 µs).

The application finds it as an attribute of the function behind daphne's
``send`` (``send.func.send_text_now``, :mod:`klines.serving.immediate`) and
calls it with ``send`` and the text; it returns once the frame is sent or in
Twisted's buffer. It relies on daphne's, autobahn's and Twisted's internals,
so :func:`binancews.daphne_patches.apply` installs it only on the versions in
:data:`REQUIRES` (``tests/test_daphne_prepared.py`` inspects what it relies on,
:data:`UPSTREAM` digests it) and otherwise logs one line and leaves daphne as it is.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

SERVER_MODULE = "daphne.server"
REQUIRES = {"daphne": "4.2.3", "autobahn": "26.11.1", "Twisted": "26.10.0"}
UPSTREAM = {  # the send it rides on, the framing it reuses, the buffers and the write it stands in for
    "daphne.server:Server.handle_reply": "2d3dceaa037c2c83",
    "daphne.ws_protocol:WebSocketProtocol.serverSend": "638c06986cc0fbd0",
    "autobahn.websocket.protocol:WebSocketFactory.prepareMessage": "373e54b30fd83d2d",
    "autobahn.websocket.protocol:WebSocketProtocol.sendPreparedMessage": "fc7eac2ed8369a12",
    "autobahn.websocket.protocol:WebSocketProtocol.sendData": "eda3296873288142",
    "twisted.internet.abstract:FileDescriptor.write": "875881046d89f009",
    "twisted.internet.tcp:Connection.writeSomeData": "3f3ebd2e1967372a",
}
WITHOUT = "each frame on / goes through ASGI send, daphne and autobahn per client (about 2.5x the CPU per frame)"
MAX_PREPARED = 256  # frames kept framed (a client gets all of a fan-out's frames before the next one does)

_TCP_SERVER: type | None = None  # twisted.internet.tcp.Server, once installed


class Prepared:
    """Websocket frames of texts, framed once per ``str`` object by autobahn's ``prepareMessage``."""

    def __init__(self, prepare: Callable[[bytes], Any], limit: int = MAX_PREPARED) -> None:
        self._prepare = prepare
        self._limit = limit
        self._frames: dict[int, tuple[str, bytes]] = {}  # id(text) -> (text, its frame); the text keeps the id

    def frame(self, text: str) -> bytes:
        entry = self._frames.get(id(text))
        if entry is not None and entry[0] is text:
            return entry[1]
        if len(self._frames) >= self._limit:
            self._frames.clear()
        framed = self._prepare(text.encode("utf8")).payloadHybi
        self._frames[id(text)] = (text, framed)
        return framed


def send_text_now(send: functools.partial, text: str) -> None:
    """Send ``text`` on the daphne websocket behind ``send`` now; raise if it cannot be sent (as ``send`` would)."""
    server, protocol = send.func.__self__, send.args[0]
    connection = server.connections.get(protocol)
    if connection is None or connection.get("disconnected", None):
        return  # daphne's handle_reply: nothing to do for a connection that is gone
    if protocol.state == protocol.STATE_OPEN and protocol._perMessageCompress is None and not protocol.send_queue:
        write_at_once(protocol.transport, _prepared(protocol.factory).frame(text))
    else:
        protocol.handle_reply({"type": "websocket.send", "text": text})


def write_at_once(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, but what the socket takes now is sent now if nothing waits before it.

    Twisted's ``write`` buffers and watches the socket for writability (an epoll change to add the writer,
    a callback, another to remove it) even when the socket could take the frame at once, as it almost always
    can. For a plain TCP connection of twisted's with nothing buffered, this sends at once, as twisted's own
    ``writeSomeData`` would; the rest (or everything, on any other transport) goes through ``write``.
    """
    if (
        type(transport) is _TCP_SERVER
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport.dataBuffer
        and not transport._tempDataLen
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:  # would block, or the connection is lost: twisted's write finds out as it would
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def _prepared(factory: Any) -> Prepared:
    prepared = getattr(factory, "_binancews_prepared", None)
    if prepared is None:
        prepared = factory._binancews_prepared = Prepared(factory.prepareMessage)
    return prepared


def install() -> bool:
    """Offer :func:`send_text_now` on daphne's ``send``; ``False`` (nothing done) if daphne is not loaded."""
    server = sys.modules.get(SERVER_MODULE)
    if server is None:
        return False
    global _TCP_SERVER
    from twisted.internet.tcp import Server as _TCP_SERVER  # noqa: N811 - twisted's accepted TCP connection

    server.Server.handle_reply.send_text_now = send_text_now  # daphne's function, unchanged, now carrying it
    return True
