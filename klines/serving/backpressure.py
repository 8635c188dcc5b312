"""How many bytes a websocket connection has queued but not yet written to its socket.

ASGI gives an application no backpressure: under daphne every ``send`` is
buffered in Twisted's transport, without bound. To close a client that stops
reading before its buffer eats the process's memory, the senders ask
:func:`pending_bytes`. Only the server knows where its buffer is, so the
server's side registers the reader (:func:`read_pending_with`; under daphne
``binancews.daphne_patches.backpressure``, guarded by the versions it reads the
private fields of). Without one, ``None``: the senders count only what they were
handed and not yet sent, which under uvicorn (whose ``send`` waits) suffices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PendingReader = Callable[[Callable[..., Any]], "int | None"]


def _unknown(send: Callable[..., Any]) -> int | None:
    return None


_reader: PendingReader = _unknown


def read_pending_with(reader: PendingReader | None) -> None:
    """Make :func:`pending_bytes` ask ``reader`` (``None``: no reader, the default)."""
    global _reader
    _reader = reader or _unknown


def pending_bytes(send: Callable[..., Any]) -> int | None:
    """Bytes buffered for the peer behind ``send``, or ``None`` if unknown."""
    return _reader(send)
