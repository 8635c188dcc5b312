"""Give each daphne application instance a small inbox instead of an ``asyncio.Queue``.

daphne 4.2 makes an ``asyncio.Queue`` per connection for the messages its
protocol hands the application (``receive``). Such a queue holds three
``collections.deque`` and an ``asyncio.Event`` with a fourth: ~3.2 KB, kept
for as long as the connection is open, though an idle websocket connection
receives one message when it opens and one when it closes. :class:`Inbox` does
what daphne and the application use of it (``put_nowait`` and ``get``, first
in first out, any number of readers, cancellation-safe like
``asyncio.Queue.get``) in ~0.2 KB. :func:`install` makes daphne's
``Server.create_application`` use it; under another server (uvicorn), where
daphne's server is loaded but unused, it changes nothing. Measured in bench/README.md ("Many
clients").
"""

from __future__ import annotations

import asyncio
import sys
from functools import partial
from typing import Any

SERVER_MODULE = "daphne.server"
REQUIRES = {"daphne": "4.2.3"}
UPSTREAM = {"daphne.server:Server.create_application": "e440a9663047ea85"}  # copied by create_application below
WITHOUT = "each connection keeps daphne's ~3.2 KB asyncio.Queue"


class Inbox:
    """``asyncio.Queue``'s ``put_nowait``/``get``/``qsize``/``empty``, unbounded, without the deques."""

    __slots__ = ("_items", "_getters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future] = []

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._wake_next()

    async def get(self) -> Any:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()  # no-op if it was woken already
                if getter in self._getters:
                    self._getters.remove(getter)
                if self._items and not getter.cancelled():  # woken, then cancelled: pass the wake-up on
                    self._wake_next()
                raise
        return self._items.pop(0)

    def _wake_next(self) -> None:
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return


def create_application(server: Any, protocol: Any, scope: dict) -> Inbox | None:
    """daphne 4.2's ``Server.create_application``, with an :class:`Inbox` for the input queue."""
    assert "application_instance" not in server.connections[protocol]
    inbox = Inbox()
    scope.setdefault("asgi", {"version": "3.0"})
    application_instance = server.application(
        scope=scope, receive=inbox.get, send=partial(server.handle_reply, protocol)
    )
    if protocol not in server.connections:
        return None
    server.connections[protocol]["application_instance"] = asyncio.ensure_future(
        application_instance, loop=asyncio.get_event_loop()
    )
    return inbox


create_application.uses_inbox = True  # type: ignore[attr-defined]


def install() -> bool:
    """Make daphne's server use :func:`create_application` if daphne is loaded; return whether it does."""
    module = sys.modules.get(SERVER_MODULE)
    if module is None:
        return False
    server = module.Server
    if not getattr(server.create_application, "uses_inbox", False):
        server.create_application = create_application
    return True
