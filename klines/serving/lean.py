"""The base of the service's websocket consumers: none of the per-connection work channels does by default.

The connect path is the service's hot path (measurements in bench/README.md).
Channels gives every connection a channel-layer channel and its receive task,
and runs ``close_old_connections()`` in the one thread-sensitive worker around
every event and after every disconnect. These consumers never touch the
database and get their frames from the process's one feed, which holds the
process's one layer channel, so a connection needs none of it.
"""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer


class LeanConsumer(AsyncWebsocketConsumer):
    # No alias is configured under this name, so channels gives the connection no layer channel.
    channel_layer_alias = None

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
