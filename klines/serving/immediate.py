"""A server's synchronous text send, when the server offers one (daphne with ``binancews.daphne_patches.prepared``).

ASGI's ``send`` is a coroutine: each frame needs an ``await``, so a sender
needs a task of its own per connection. A server whose ``send`` never waits
(daphne buffers every frame in its transport) can offer to send a text now:
the function behind daphne's ``send`` carries ``send_text_now(send, text)``,
which returns once the frame is in the transport's buffer (and raises if the
connection cannot take it). :func:`immediate_send` finds it; for any other
server, or a shape it does not recognise, it answers ``None`` and frames go
through ``send`` as ASGI says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SendNow = Callable[[Any, str], None]  # (the connection's ASGI send, the text)


def immediate_send(send: Callable[..., Any]) -> SendNow | None:
    """The server's ``send_text_now`` behind ``send``, or ``None``."""
    send_now = getattr(getattr(send, "func", None), "send_text_now", None)
    return send_now if callable(send_now) else None
