"""Pure: Binance's websocket market-stream protocol — stream names, paths, and the JSON requests a client sends.

Paths: ``/market/ws/<stream>[/<stream>...]`` sends raw events,
``/market/stream?streams=<stream>/<stream>`` sends combined ones
(``{"stream": ..., "data": ...}``); ``/ws`` and ``/stream`` are the legacy
spellings, and either may name no stream at first. Requests are
``{"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS" | "SET_PROPERTY" | "GET_PROPERTY",
"params": [...], "id": <unsigned int>}``; answers and error replies use Binance's
wording (``{"result": null, "id": 1}``, ``{"code": 2, "msg": "Invalid request: ...", "id": 1}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

MAX_STREAMS = 1024  # per connection, as on Binance
MAX_INCOMING_PER_SECOND = 10  # more closes the connection, as on Binance
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_STREAM = re.compile(r"^([a-z0-9]{1,30})@kline_([0-9]{1,2}[mhdwM])$")


class ProtocolError(ValueError):
    """A request Binance would answer with an error reply; the connection stays open."""

    def __init__(self, code: int, msg: str, request_id: Any = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.request_id = request_id

    def reply(self) -> str:
        body: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.request_id is not None:
            body["id"] = self.request_id
        return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True)
class StreamName:
    symbol: str  # upper case
    interval: str

    def __str__(self) -> str:
        return f"{self.symbol.lower()}@kline_{self.interval}"


@dataclass(frozen=True, kw_only=True)
class Request:
    method: str
    params: tuple[Any, ...]
    id: int | None


def parse_stream_name(raw: str, *, symbols: Collection[str], intervals: Collection[str]) -> StreamName:
    """``btcusdt@kline_1m`` -> :class:`StreamName`; a stream this service does not record is an error."""
    match = _STREAM.match(raw) if isinstance(raw, str) else None
    if match is None:
        raise ProtocolError(
            2, f"Invalid request: unsupported stream {raw!r}; this service serves <symbol>@kline_<interval>"
        )
    symbol, interval = match.group(1).upper(), match.group(2)
    if symbol not in symbols:
        raise ProtocolError(2, f"Invalid request: symbol {symbol} is not recorded here")
    if interval not in intervals:
        raise ProtocolError(2, f"Invalid request: interval {interval} is not recorded here")
    return StreamName(symbol, interval)


@dataclass(frozen=True, kw_only=True)
class Route:
    combined: bool
    streams: tuple[str, ...]  # as written in the path or query, not yet checked


def parse_path(path: str, query_string: str) -> Route | None:
    """The streams a connection names in its URL; ``None`` for a path that is not a stream endpoint."""
    path = path.rstrip("/") if path != "/" else path
    for prefix in ("/market", ""):
        if path == f"{prefix}/stream":
            names = parse_qs(query_string).get("streams", [""])[0]
            return Route(combined=True, streams=tuple(s for s in names.split("/") if s))
        if path == f"{prefix}/ws":
            return Route(combined=False, streams=())
        if path.startswith(f"{prefix}/ws/"):
            return Route(combined=False, streams=tuple(s for s in path[len(prefix) + 4 :].split("/") if s))
    return None


def parse_request(text: str) -> Request:
    """One text frame from a client; a malformed one raises :class:`ProtocolError` with Binance's reply."""
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(3, f"Invalid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(3, "Invalid JSON: expected an object")
    request_id = message.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, int) or request_id < 0):
        raise ProtocolError(2, "Invalid request: request ID must be an unsigned integer")
    method = message.get("method")
    if method is None:
        raise ProtocolError(2, "Invalid request: missing field `method`", request_id)
    if method not in METHODS:
        expected = ", ".join(METHODS)
        raise ProtocolError(2, f"Invalid request: unknown variant `{method}`, expected one of {expected}", request_id)
    params = message.get("params", [])
    if not isinstance(params, list):
        raise ProtocolError(2, "Invalid request: params must be an array", request_id)
    return Request(method=method, params=tuple(params), id=request_id)


def result_reply(result: Any, request_id: int | None) -> str:
    return json.dumps({"result": result, "id": request_id}, separators=(",", ":"))
