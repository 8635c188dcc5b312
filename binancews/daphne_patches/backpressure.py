"""Tell the feed's senders how many bytes daphne has buffered for a client (slow-client protection).

daphne's ``send`` returns at once and Twisted buffers the bytes without bound,
so a client that stops reading would grow the process until it dies. The
senders close it past ``WS_MAX_PENDING_BYTES`` (:mod:`klines.serving.sender`),
counting what :func:`pending_bytes` finds in the connection's transport: the
private ``dataBuffer``, ``offset`` and ``_tempDataLen`` of Twisted's
``FileDescriptor``, reached through daphne's ``send``, which is
``partial(server.handle_reply, protocol)``. :func:`install` registers it with
:mod:`klines.serving.backpressure`. A send of another shape (uvicorn's) or a
transport that is no ``FileDescriptor`` (a TLS wrapper) gets ``None``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from klines.serving import backpressure

SERVER_MODULE = "daphne.server"
REQUIRES = {"daphne": "4.2.3", "Twisted": "26.10.0"}
UPSTREAM = {
    "daphne.server:Server.create_application": "e440a9663047ea85",  # send = partial(self.handle_reply, protocol)
    "twisted.internet.abstract:FileDescriptor.write": "875881046d89f009",  # fills _tempDataBuffer, _tempDataLen
    "twisted.internet.abstract:FileDescriptor.doWrite": "55fa74417da39f94",  # moves it to dataBuffer, offset
}
WITHOUT = "no slow-client protection under daphne: a client that stops reading is buffered for without bound"


_FILE_DESCRIPTOR: type | None = None  # twisted.internet.abstract.FileDescriptor, once installed


def pending_bytes(send: Callable[..., Any]) -> int | None:
    """Bytes Twisted holds for the peer behind daphne's ``send``, or ``None`` for another server's."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    transport = getattr(send.args[0], "transport", None)  # None once the connection is lost
    if _FILE_DESCRIPTOR is None or not isinstance(transport, _FILE_DESCRIPTOR):
        return None
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def install() -> bool:
    """Register :func:`pending_bytes` with the feed if daphne is loaded; return whether it is registered."""
    if SERVER_MODULE not in sys.modules:
        return False
    global _FILE_DESCRIPTOR
    # Imported once here, not per call in pending_bytes (an import statement costs a few µs per frame sent).
    from twisted.internet.abstract import FileDescriptor as _FILE_DESCRIPTOR  # noqa: N811 - loaded with daphne

    backpressure.read_pending_with(pending_bytes)
    return True
