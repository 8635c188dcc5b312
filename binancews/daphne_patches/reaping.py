"""Free a closed daphne connection at once, instead of at daphne's once-a-second reaper.

daphne 4.2 keeps every connection in ``Server.connections`` until
``Server.application_checker`` runs (once a second) and finds it closed and
its application finished. By then a connect storm has run hundreds of young
collections, so each closed connection's objects (about 60: twisted's
``tcp.Server`` and ``HTTPChannel``, daphne's ``WebRequest`` and
``WebSocketProtocol``, autobahn's state, deferreds, the application's task
and queue) sit in CPython's oldest generation, in reference cycles, and only
a full collection frees them: 20-150 ms pauses that made the storm's p99
(bench/README.md, "What limits the connect storm").

:func:`install` makes daphne reap a connection as soon as it is both closed
and its application finished (the checker's own rule, with its logging of an
application's exception), and then breaks the cycles the probe found, so
reference counting frees the objects on the spot. The checker still runs and
finds nothing left to do. docs/daphne-upstream-patch.md is the same change
written into daphne, the way to remove this module.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

SERVER_MODULE = "daphne.server"
REQUIRES = {"daphne": "4.2.3", "autobahn": "26.11.1", "Twisted": "26.10.0"}
UPSTREAM = {
    "daphne.server:Server.protocol_disconnected": "7c05736186760b40",  # wrapped
    "daphne.server:Server.create_application": "e440a9663047ea85",  # wrapped
    "daphne.server:Server.application_checker": "1721c6d6833e7f86",  # its rule and logging, done at once by reap()
    "daphne.http_protocol:WebRequest.process": "b22deb6530a58273",  # leaves an upgraded request in channel.requests
    "autobahn.websocket.protocol:WebSocketProtocol._connectionLost": "72d921c61108b5ce",  # resolves is_closed
    "twisted.web.http:HTTPChannel.requestDone": "1ea5e0193ce1a1a8",  # channel.requests
}
WITHOUT = "closed connections wait for daphne's once-a-second reaper and full garbage collections"

logger = logging.getLogger("daphne.server")  # the checker's own logger: its messages keep their name


def reap(server: Any, protocol: Any) -> bool:
    """Remove ``protocol`` from daphne's connections if it is closed and its application done; return whether."""
    details = server.connections.get(protocol)
    if details is None or not details.get("disconnected"):
        return False
    instance = details.get("application_instance")
    if instance is not None:
        if not instance.done():
            return False
        _log_failure(server, instance)
    del server.connections[protocol]
    break_cycles(protocol)
    return True


def break_cycles(protocol: Any) -> None:
    """Drop the references that keep a reaped connection's objects in reference cycles."""
    closed = getattr(protocol, "is_closed", None)  # autobahn resolves it with the protocol itself
    if closed is not None and getattr(closed, "called", False):
        del protocol.is_closed
    channel = getattr(protocol, "channel", None)  # an HTTP request; upgraded ones stay in the channel's list
    if channel is not None and getattr(protocol, "transport", True) is None and protocol in channel.requests:
        channel.requests.remove(protocol)


def _log_failure(server: Any, instance: asyncio.Future) -> None:
    """What ``application_checker`` does with a finished application of a closed connection."""
    if instance.cancelled():
        return
    exception = instance.exception()
    if exception is None:
        return
    if isinstance(exception, KeyboardInterrupt):  # the application asks the server to exit (daphne's rule)
        server.stop()
    else:
        logger.error("Exception inside application: %s", exception, exc_info=exception)


def reaping_on_disconnect(protocol_disconnected: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    @functools.wraps(protocol_disconnected)
    def disconnected(server: Any, protocol: Any) -> None:
        if protocol not in server.connections:  # already reaped (an upgraded request, a second close)
            return
        protocol_disconnected(server, protocol)
        reap(server, protocol)

    disconnected.reaps_at_once = True  # type: ignore[attr-defined]
    return disconnected


def reaping_when_done(create_application: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(create_application)
    def create(server: Any, protocol: Any, scope: dict) -> Any:
        queue = create_application(server, protocol, scope)
        instance = server.connections.get(protocol, {}).get("application_instance")
        if instance is not None:
            instance.add_done_callback(lambda _: reap(server, protocol))
        return queue

    create.reaps_at_once = True  # type: ignore[attr-defined]
    return create


def install() -> bool:
    """Patch daphne's server if daphne is loaded; return whether it is patched (idempotent)."""
    module = sys.modules.get(SERVER_MODULE)
    if module is None:
        return False
    server = module.Server
    if not getattr(server.protocol_disconnected, "reaps_at_once", False):
        server.protocol_disconnected = reaping_on_disconnect(server.protocol_disconnected)
    if not getattr(server.create_application, "reaps_at_once", False):
        server.create_application = reaping_when_done(server.create_application)
    return True
