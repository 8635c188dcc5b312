"""Websocket consumers: the kline feed on ``/`` and a polite refusal elsewhere."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer

from klines.feed import get_feed

CLOSE_UNKNOWN_PATH = 4404


class KlineFeedConsumer(AsyncWebsocketConsumer):
    """Send the five payloads on connect, then every update; ignore what clients send."""

    async def connect(self) -> None:
        await self.accept()
        for frame in get_feed().attach(self, self.send_frame):
            await self.send_frame(frame)

    async def send_frame(self, frame: str) -> None:
        await self.send(text_data=frame)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients have nothing to say to a market-data feed; their messages are ignored."""

    async def disconnect(self, code: int) -> None:
        get_feed().detach(self)


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Reject the handshake for any path other than ``/`` (HTTP 403, no traceback)."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_UNKNOWN_PATH)
