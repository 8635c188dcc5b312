"""Pure: which connections to keep, retire and open when the recorded symbols change (``KLINE_SYMBOLS=all``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from klines.binance.parse import stream_name
from klines.ingest.stream import split_streams

Stream = tuple[str, str]  # (SYMBOL, interval)


@dataclass(frozen=True, kw_only=True)
class Replan:
    keep: tuple[int, ...]  # indexes of the connections that go on as they are
    retire: tuple[int, ...]  # indexes of the connections to close (they carry a delisted symbol)
    open: tuple[tuple[Stream, ...], ...]  # new connections' streams: new listings and a retired one's others
    added: tuple[str, ...]
    gone: tuple[str, ...]


def replan(
    connections: Sequence[Sequence[Stream]],
    current: Sequence[str],
    listed: Sequence[str],
    intervals: Sequence[str],
    per_connection: int,
    *,
    name: Callable[[str, str], str] = stream_name,
) -> Replan:
    """Record exactly ``listed``: untouched connections keep streaming; a connection that carries a
    delisted symbol is replaced by one without it; new listings get connections of their own (``name``
    spells a stream, for the URL's length)."""
    wanted, had = set(listed), set(current)
    added = tuple(s for s in listed if s not in had)
    gone = tuple(sorted(had - wanted))
    retire = tuple(n for n, streams in enumerate(connections) if {s for s, _ in streams} & set(gone))
    keep = tuple(n for n in range(len(connections)) if n not in retire)
    orphaned = [(s, i) for n in retire for s, i in connections[n] if s not in gone]
    fresh = orphaned + [(s, i) for s in added for i in intervals]
    return Replan(
        keep=keep, retire=retire, open=tuple(split_streams(fresh, per_connection, name=name)), added=added, gone=gone
    )
