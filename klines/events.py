"""The messages the ingest publishes on the channel layer: each close after storing it, and batches of updates.

* ``klines.closed``: one message per newly stored close (:func:`publish_closed`),
  with ``stored_ms``: the ingest's clock once the close was stored, and
  ``superseded: true`` on a close that is history by the time it is published
  (:func:`closed_messages`): the books take it, the Binance-protocol streams
  do not send it as a live event.
* ``klines.updates``: in-progress kline events as received from the exchange,
  many per message (:func:`publish_updates`, called by :mod:`klines.ingest.relay`
  once per tick); each event is ``[stream, open time ms, event JSON]``, so a
  serving process routes it without decoding and relays the JSON as is;
  ``received_ms`` is when the ingest received the oldest of them.

The two times start the serving processes' fan-out latency
(:mod:`klines.serving.delivery`); a message without one is served, untimed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from klines.binance.intervals import interval_ms
from klines.binance.parse import ClosedKline, datetime_to_ms, ms_to_datetime
from klines.binance.schema import DECIMAL_NAMES, TIME_NAMES

logger = logging.getLogger(__name__)

GROUP = "klines.closed"
MESSAGE_TYPE = "kline.closed"
UPDATES_GROUP = "klines.updates"
UPDATES_TYPE = "kline.updates"
STORED_MS = "stored_ms"
RECEIVED_MS = "received_ms"
SUPERSEDED = "superseded"


def now_ms() -> int:
    return int(time.time() * 1000)


def kline_to_message(kline: ClosedKline, stored_ms: int | None = None) -> dict[str, Any]:
    """A channel-layer message (msgpack-safe: decimals as strings, times as ms)."""
    body: dict[str, Any] = {"type": MESSAGE_TYPE}
    if stored_ms is not None:
        body[STORED_MS] = stored_ms
    for name, value in kline.as_fields().items():
        if name in TIME_NAMES:
            body[name] = datetime_to_ms(value)
        elif isinstance(value, Decimal):
            body[name] = str(value)
        else:
            body[name] = value
    return body


def kline_from_message(message: dict[str, Any]) -> ClosedKline:
    fields: dict[str, Any] = {}
    for name in ClosedKline.__dataclass_fields__:
        value = message[name]
        if name in TIME_NAMES:
            fields[name] = ms_to_datetime(value)
        elif name in DECIMAL_NAMES:
            fields[name] = Decimal(value)
        else:
            fields[name] = value
    return ClosedKline(**fields)


def closed_messages(
    klines: Sequence[ClosedKline], stored_ms: int | None = None, *, exchange_ms: int | None = None
) -> list[dict[str, Any]]:
    """The layer messages of a batch of stored closes, one per kline, each history marked ``superseded``.

    A close is history when a newer close of its stream is in the same batch, or
    when, by ``exchange_ms`` (the exchange's clock as the ingest knows it), the
    kline after it had closed already: a backfill's klines but its newest, or a
    close stored an interval late. Binance sends a close as it happens, never later.
    """
    newest: dict[tuple[str, str], datetime] = {}
    for kline in klines:
        key = (kline.symbol, kline.interval)
        if key not in newest or kline.open_time > newest[key]:
            newest[key] = kline.open_time
    messages = []
    for kline in klines:
        message = kline_to_message(kline, stored_ms)
        successor_closed = exchange_ms is not None and exchange_ms > message["close_time"] + interval_ms(kline.interval)
        if successor_closed or kline.open_time < newest[(kline.symbol, kline.interval)]:
            message[SUPERSEDED] = True
        messages.append(message)
    return messages


def superseded(message: dict[str, Any]) -> bool:
    """Whether a ``klines.closed`` message is a close that was history when published."""
    return message.get(SUPERSEDED) is True


def publish_closed(*klines: ClosedKline, exchange_ms: int | None = None) -> bool:
    """Tell every serving process that ``klines`` were stored; ``False`` if the layer failed.

    One layer message per kline, all sent in one event loop (one Redis
    connection) rather than one loop per kline; ``exchange_ms`` tells history from
    live closes (:func:`closed_messages`). A failed publish loses nothing:
    serving processes also reconcile with the database.
    """
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None or not klines:
        return False

    stored_ms = now_ms()

    async def send_all() -> None:
        for message in closed_messages(klines, stored_ms, exchange_ms=exchange_ms):
            await layer.group_send(GROUP, message)

    try:
        async_to_sync(send_all)()
    except Exception as exc:  # Redis down: the database reconcile covers it
        first = klines[0]
        logger.warning("could not publish %d kline(s) from %s %s: %s", len(klines), first.symbol, first.open_time, exc)
        return False
    return True


def updates_message(events: list[tuple[str, int, str]], received_ms: int | None = None) -> dict[str, Any]:
    """One layer message for a batch of ``(stream, open time ms, event JSON)`` (msgpack-safe)."""
    body: dict[str, Any] = {"type": UPDATES_TYPE, "events": [list(event) for event in events]}
    if received_ms is not None:
        body[RECEIVED_MS] = received_ms
    return body


def updates_from_message(message: dict[str, Any]) -> list[tuple[str, int, str]]:
    """The events of an updates message; raises ``KeyError``/``TypeError``/``ValueError`` if malformed."""
    events = []
    for stream, open_ms, text in message["events"]:
        if not (isinstance(stream, str) and isinstance(open_ms, int) and isinstance(text, str)):
            raise ValueError(f"malformed update {stream!r} {open_ms!r}")
        events.append((stream, open_ms, text))
    return events


def message_started(message: dict[str, Any]) -> float | None:
    """When the ingest stored (a close) or received (updates) what ``message`` carries, in epoch seconds."""
    started = message.get(STORED_MS, message.get(RECEIVED_MS))
    return started / 1000 if isinstance(started, int) and not isinstance(started, bool) else None


def publish_updates(events: list[tuple[str, int, str]], received_ms: int | None = None) -> bool:
    """Send one batch of in-progress updates to every serving process; ``False`` if the layer failed.

    Nothing is stored from these; a lost batch only means some clients miss some in-progress updates.
    """
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None or not events:
        return False
    try:
        async_to_sync(layer.group_send)(UPDATES_GROUP, updates_message(events, received_ms))
    except Exception as exc:  # Redis down: the closes still arrive by reconciling
        logger.warning("could not publish %d in-progress update(s): %s", len(events), exc)
        return False
    return True
