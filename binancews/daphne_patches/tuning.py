"""Spare daphne's websocket stack the debug messages it formats on every connection.

autobahn, daphne's websocket protocol, builds the arguments of two debug log
calls per connection before the logger decides to drop them: a ``pformat()``
of all its protocol options in ``_connectionMade``, one of the transport
details in ``startHandshake``, ``hltype()`` names of several methods, and
``hlval()`` of the peer and the size on every frame sent (``sendData``: ~15 %
of the send path in a fan-out to 5,000 clients).
py-spy put these at 13-17 % of daphne's main thread in the connect storm
(bench/README.md). :func:`install` makes autobahn's protocol module format
them only while txaio's log level is ``debug`` or ``trace``; then it logs
exactly what it did before. Nothing else in autobahn changes.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import txaio  # autobahn's logging layer, installed with daphne (its functions work once autobahn picks a framework)

PROTOCOL_MODULE = "autobahn.websocket.protocol"
REQUIRES = {"autobahn": "26.11.1", "txaio": "26.6.1"}
UPSTREAM = {  # the protocol's methods that call the formatters by their module-global names
    "autobahn.websocket.protocol:WebSocketProtocol._connectionMade": "a9a04a1d40682a16",
    "autobahn.websocket.protocol:WebSocketProtocol.sendData": "eda3296873288142",
    "autobahn.websocket.protocol:WebSocketClientProtocol.startHandshake": "440ec912a35432f4",
}
WITHOUT = "autobahn formats its debug messages on every connection and frame"
PATCHED = ("pformat", "hltype", "hlval")  # the formatters autobahn's protocol calls eagerly for debug messages
DEBUG_LEVELS = frozenset({"debug", "trace"})
NOT_FORMATTED = "(not formatted: autobahn debug logging is off)"


def autobahn_debug_logging() -> bool:
    """Whether autobahn's loggers (txaio's, at the global level) emit debug messages."""
    return txaio.get_global_log_level() in DEBUG_LEVELS


def only_when_debug_logging(format_: Callable[..., str]) -> Callable[..., str]:
    """``format_``, evaluated only while autobahn logs debug messages."""

    @functools.wraps(format_)
    def formatted_if_logged(*args: Any, **kwargs: Any) -> str:
        return format_(*args, **kwargs) if autobahn_debug_logging() else NOT_FORMATTED

    formatted_if_logged.skips_when_not_debugging = True  # type: ignore[attr-defined]
    return formatted_if_logged


def install() -> bool:
    """Patch autobahn's protocol module if daphne loaded it; return whether it is patched (idempotent)."""
    protocol = sys.modules.get(PROTOCOL_MODULE)
    if protocol is None:
        return False
    for name in PATCHED:
        original = getattr(protocol, name)
        if not getattr(original, "skips_when_not_debugging", False):
            setattr(protocol, name, only_when_debug_logging(original))
    return True
