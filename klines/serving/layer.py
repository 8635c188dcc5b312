"""One channel-layer channel per serving process, in the groups the ingest publishes to, for as long as it runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

RETRY_SECONDS = (0.5, 1, 2, 5)


async def listen(groups: tuple[str, ...], apply: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """Hand every message of ``groups`` to ``apply``; ride out a dead layer with backoff (no layer: return)."""
    layer = get_channel_layer()
    if layer is None:
        return
    failures = 0
    while True:
        membership = None
        try:
            channel = await layer.new_channel()
            membership = asyncio.create_task(_keep_membership(layer, channel, groups))
            failures = 0
            while True:
                await apply(await layer.receive(channel))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            failures += 1
            logger.warning("channel layer unavailable (%s); retry in %ss", exc, delay)
            await asyncio.sleep(delay)
        finally:
            if membership is not None:
                membership.cancel()


async def _keep_membership(layer: Any, channel: str, groups: tuple[str, ...]) -> None:
    """Join the groups now and again well before the layer's group expiry drops us."""
    refresh = max(60.0, getattr(layer, "group_expiry", 86400) / 4)
    while True:
        for group in groups:
            try:
                await layer.group_add(group, channel)
            except Exception as exc:  # the receive loop notices a dead layer too
                logger.warning("could not join %s: %s", group, exc)
        await asyncio.sleep(refresh)
