"""Pure: a replay of the record over Binance's combined stream — its parameters, merge order, pacing and frames.

``/market/replay/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m&startTime=...&endTime=...&speed=60``
replays the klines opened in ``[startTime, endTime]`` (milliseconds, as the
REST mirror's ``startTime``/``endTime``) as closed kline events, merged across
streams by close time (ties in the order the URL names the streams). Event
``i`` is due ``(close_i - close_0) / speed`` after the first; ``speed=0`` means
as fast as the client reads.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

from klines.api.stream_events import EventKline, combined_frame, encode, kline_event
from klines.api.stream_protocol import MAX_STREAMS, ProtocolError, StreamName, parse_stream_name
from klines.binance.parse import datetime_to_ms

MAX_SPEED = 100_000.0  # a day of klines in under a second; faster is speed=0
READ_BATCH = 1000  # klines read at a time per stream ...
READ_BUDGET = 20_000  # ... fewer when many streams, so a replay holds at most about this many
MIN_READ_BATCH = 20
CLOSE_COMPLETE = 1000
COMPLETE_REASON = "replay complete"


@dataclass(frozen=True, kw_only=True)
class Replay:
    streams: tuple[StreamName, ...]
    start_ms: int
    end_ms: int
    speed: float  # 0: as fast as the client reads


def _invalid(msg: str) -> ProtocolError:
    return ProtocolError(2, f"Invalid request: {msg}")


def _milliseconds(query: dict[str, list[str]], name: str) -> int | None:
    raw = query.get(name, [""])[0].strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 15:
        raise _invalid(f"{name} must be a time in milliseconds since the epoch, got {raw!r}")
    return int(raw)


def _speed(query: dict[str, list[str]]) -> float:
    raw = query.get("speed", ["1"])[0].strip()
    try:
        speed = float(raw)
    except ValueError:
        speed = math.nan
    if not math.isfinite(speed) or not 0 <= speed <= MAX_SPEED:
        raise _invalid(f"speed must be a number from 0 to {MAX_SPEED:g} (0: as fast as the client reads), got {raw!r}")
    return speed


def parse_replay(query_string: str, *, symbols: Collection[str], intervals: Collection[str], now_ms: int) -> Replay:
    """The replay a URL's query asks for; :class:`ProtocolError` with the reason to refuse it otherwise.

    ``streams`` (1 to :data:`MAX_STREAMS`, recorded here) and ``startTime`` are
    required; ``endTime`` defaults to now and must be after ``startTime``;
    ``speed`` defaults to 1 (real time).
    """
    query = parse_qs(query_string)
    names = [n for n in query.get("streams", [""])[0].split("/") if n]
    if not names:
        raise _invalid("streams is required, e.g. streams=btcusdt@kline_1m/ethusdt@kline_1m")
    streams = tuple(dict.fromkeys(parse_stream_name(n, symbols=symbols, intervals=intervals) for n in names))
    if len(streams) > MAX_STREAMS:
        raise _invalid(f"too many streams; at most {MAX_STREAMS} per connection")
    start_ms = _milliseconds(query, "startTime")
    if start_ms is None:
        raise _invalid("startTime is required (milliseconds since the epoch)")
    end_ms = _milliseconds(query, "endTime")
    end_ms = now_ms if end_ms is None else end_ms
    if end_ms <= start_ms:
        raise _invalid("endTime must be after startTime")
    return Replay(streams=streams, start_ms=start_ms, end_ms=end_ms, speed=_speed(query))


def read_batch(stream_count: int) -> int:
    """Klines to read at a time per stream: :data:`READ_BATCH`, fewer when many streams share the budget."""
    return max(MIN_READ_BATCH, min(READ_BATCH, READ_BUDGET // max(stream_count, 1)))


def next_stream(pending: Sequence[deque[EventKline]]) -> int | None:
    """The stream whose next kline closes first (the first named on a tie); ``None`` when all are empty.

    Every non-exhausted stream must hold at least one kline: a stream whose
    buffer ran dry is read again before this is asked.
    """
    best: int | None = None
    for index, rows in enumerate(pending):
        if rows and (best is None or rows[0].close_time < pending[best][0].close_time):
            best = index
    return best


def due_after(first_close_ms: int, close_ms: int, speed: float) -> float:
    """Seconds after the first event that an event of ``close_ms`` is due (0 at ``speed=0``: no pacing)."""
    if speed == 0:
        return 0.0
    return (close_ms - first_close_ms) / 1000 / speed


def replay_frame(stream: str, kline: EventKline) -> str:
    """The combined-stream frame of a closed kline, byte for byte the live stream's (``E`` = close time + 1 ms)."""
    event = kline_event(kline, closed=True, event_ms=datetime_to_ms(kline.close_time) + 1)
    return combined_frame(stream, encode(event))
