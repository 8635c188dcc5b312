"""The base of the service's websocket consumers: none of the per-connection work channels does by default.

The connect path is the service's hot path, and every idle connection's memory
counts (measurements in bench/README.md). Channels gives every connection a
channel-layer channel and its receive task, reads the server's messages through
``await_many_dispatch`` (a task per ``receive()`` plus the futures of an
``asyncio.wait`` each time, ~2.7 KB held by an idle connection), and runs
``close_old_connections()`` in the one thread-sensitive worker around every
event and after every disconnect. These consumers never touch the database and
get their frames from the process's one feed, which holds the process's one
layer channel, so a connection needs none of it: it awaits ``receive()``
directly, one message at a time, as ``await_many_dispatch`` does with one source.

Kept because it pays, measured against channels' own ``AsyncWebsocketConsumer``
(this class reduced to ``pass``, nothing else changed): ``python -m
bench.memory_ab --subject lean=<tree> --subject channels=<tree> --idle 500
--rounds 6 --storm 3000``, a fresh daphne per measurement, rotated order, load
average 17-40 on 2 cores, medians of 6 (lean in every round ahead):

======================================  ======  ========
                                        lean    channels
======================================  ======  ========
KiB per idle connection                 17.35   24.97
daphne CPU per connection (storm), us   607     898
connect storm, connections/s            225     173
======================================  ======  ========

At 2,000 idle clients (3 rounds): 18.18 against 25.90 KiB. So 7.6 KiB (30 %)
less per connection, 76 MB at 10,000 clients a process, and a third less of
daphne's CPU per connect. Drop this class if channels' dispatch stops costing
that (re-run the command above on an upgrade of channels).
"""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer


class LeanConsumer(AsyncWebsocketConsumer):
    # No alias is configured under this name, so channels gives the connection no layer channel.
    channel_layer_alias = None

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        """channels' ``AsyncConsumer.__call__`` without a layer: read and dispatch each message in turn."""
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the handler, without ``close_old_connections()`` around it."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """As channels does it, minus the groups (there are none) and ``aclose_old_connections()``."""
        await self.disconnect(message["code"])
        raise StopConsumer()
