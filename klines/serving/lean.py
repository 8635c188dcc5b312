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
