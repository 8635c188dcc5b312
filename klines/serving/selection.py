"""Pure: what a client of ``/`` may select in its URL (``?coins=ethusdt,solusdt&interval=5m&window=30``).

No query is the seed contract: every configured coin, the configured interval,
:data:`~klines.window.WINDOW` closes. Any invalid selection is refused at the
handshake, with a reason that says what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import parse_qs

MAX_WINDOW = 500
PARAMETERS = ("coins", "interval", "window")


class SelectionError(ValueError):
    """An invalid selection; the message is the reason sent to the client."""


@dataclass(frozen=True, kw_only=True)
class Selection:
    symbols: tuple[str, ...]  # upper case, in the order asked
    interval: str
    window: int


def parse_selection(
    query_string: str,
    *,
    default: Selection,
    symbols: Collection[str],
    intervals: Collection[str],
) -> Selection:
    """The selection a query string asks for; ``default`` where it names nothing."""
    try:
        query = parse_qs(query_string, keep_blank_values=True, strict_parsing=bool(query_string))
    except ValueError:
        raise SelectionError("malformed query string") from None
    unknown = sorted(set(query) - set(PARAMETERS))
    if unknown:
        raise SelectionError(f"unknown parameter {unknown[0]!r}; use coins, interval, window")
    for name, values in query.items():
        if len(values) > 1:
            raise SelectionError(f"{name} is given more than once")
    chosen = default.symbols
    if "coins" in query:
        chosen = tuple(s.strip().upper() for s in query["coins"][0].split(","))
        if not chosen or "" in chosen:
            raise SelectionError("coins must be a comma-separated list of symbols, e.g. coins=btcusdt,ethusdt")
        if len(set(chosen)) != len(chosen):
            raise SelectionError("coins names a symbol twice")
        missing = [s for s in chosen if s not in symbols]
        if missing:
            raise SelectionError(f"coin {missing[0]} is not recorded here")
    interval = query.get("interval", [default.interval])[0]
    if interval not in intervals:
        raise SelectionError(f"interval {interval!r} is not recorded here")
    window = default.window
    if "window" in query:
        text = query["window"][0]
        if not re.fullmatch(r"[0-9]{1,3}", text) or not 1 <= int(text) <= MAX_WINDOW:
            raise SelectionError(f"window must be a whole number from 1 to {MAX_WINDOW}")
        window = int(text)
    return Selection(symbols=chosen, interval=interval, window=window)
