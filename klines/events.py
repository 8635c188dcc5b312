"""The message the ingest publishes on the channel layer after storing a close."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from klines.binance.parse import ClosedKline, datetime_to_ms, ms_to_datetime

logger = logging.getLogger(__name__)

GROUP = "klines.closed"
MESSAGE_TYPE = "kline.closed"
_TIMES = ("open_time", "close_time")


def kline_to_message(kline: ClosedKline) -> dict[str, Any]:
    """A channel-layer message (msgpack-safe: decimals as strings, times as ms)."""
    body: dict[str, Any] = {"type": MESSAGE_TYPE}
    for name, value in kline.as_fields().items():
        if name in _TIMES:
            body[name] = datetime_to_ms(value)
        elif isinstance(value, Decimal):
            body[name] = str(value)
        else:
            body[name] = value
    return body


def kline_from_message(message: dict[str, Any]) -> ClosedKline:
    fields: dict[str, Any] = {}
    for name, spec in ClosedKline.__dataclass_fields__.items():
        value = message[name]
        if name in _TIMES:
            fields[name] = ms_to_datetime(value)
        elif spec.type == "Decimal":
            fields[name] = Decimal(value)
        else:
            fields[name] = value
    return ClosedKline(**fields)


def publish_closed(*klines: ClosedKline) -> bool:
    """Tell every serving process that ``klines`` were stored; ``False`` if the layer failed.

    One layer message per kline, all sent in one event loop (one Redis
    connection) rather than one loop per kline. A failed publish loses nothing:
    serving processes also reconcile with the database.
    """
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None or not klines:
        return False

    async def send_all() -> None:
        for kline in klines:
            await layer.group_send(GROUP, kline_to_message(kline))

    try:
        async_to_sync(send_all)()
    except Exception as exc:  # Redis down: the database reconcile covers it
        first = klines[0]
        logger.warning("could not publish %d kline(s) from %s %s: %s", len(klines), first.symbol, first.open_time, exc)
        return False
    return True
