"""How many bytes a websocket connection has queued but not yet written to its socket.

ASGI gives an application no backpressure: under daphne every ``send`` is
buffered in Twisted's transport, without bound. To close a client that stops
reading before its buffer eats the process's memory, we look at that buffer.
This knows daphne's shape (``send`` is ``partial(server.handle_reply, protocol)``,
the protocol's transport is a Twisted file descriptor); for any other server,
or a shape it does not recognise, it answers ``None`` and nothing is closed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def pending_bytes(send: Callable[..., Any]) -> int | None:
    """Bytes buffered for the peer behind ``send``, or ``None`` if unknown."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    transport = getattr(send.args[0], "transport", None)
    try:
        buffered = len(transport.dataBuffer) - transport.offset
        return buffered + transport._tempDataLen
    except (AttributeError, TypeError):
        return None
