"""Pure payload building: stored klines -> the frame a websocket client receives."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from klines.window import WINDOW


class KlineLike(Protocol):
    open_time: datetime
    open: Decimal
    close: Decimal


def operation(close: Decimal, reference: Decimal) -> str:
    """ "BUY" when the close is at or above the reference price, else "SELL"."""
    return "BUY" if close >= reference else "SELL"


def build_payload(coin: str, klines: Sequence[KlineLike], zone: ZoneInfo, window: int = WINDOW) -> dict[str, Any]:
    """The payload for ``coin`` from its newest stored klines, given oldest first.

    Up to ``window + 1`` klines may be passed; the last ``window`` (default :data:`WINDOW`) are shown.
    Each close is compared with the previous stored close, or with its own open
    when no previous kline is stored.
    """
    shown = list(klines[-window:])
    previous = klines[-window - 1] if len(klines) > window else None
    operations = []
    for kline in shown:
        reference = previous.close if previous is not None else kline.open
        operations.append(operation(kline.close, reference))
        previous = kline
    return {
        "coin": coin.upper(),
        "values": [float(k.close) for k in shown],
        "operations": operations,
        "time": [k.open_time.astimezone(zone).strftime("%H:%M") for k in shown],
    }


def encode_frame(payload: dict[str, Any]) -> str:
    """The JSON text frame for a payload (compact, so it is cheap to send to many)."""
    return json.dumps(payload, separators=(",", ":"))
