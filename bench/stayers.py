"""Pure: judge what a client that stayed connected received against the ground truth.

A ``/`` frame's ``values`` are the coin's last 10 stored closes, so it names the stored
kline it ends at (:func:`window_index`); a newer frame may replace one not yet sent
(coalesced, not lost). A stream stayer gets every update and close of its streams.
Either way (:func:`judge`): of the klines closed while it was connected, which never
came, which came twice, which came out of order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Self

WINDOW = 10  # closes in a "/" frame


class _Counts:
    """Counts that add up with ``+=``, field by field."""

    def __iadd__(self, other: Self) -> Self:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


@dataclass
class Verdict(_Counts):
    """Counts over one or many (client, stream) sequences; add them up with ``+=``."""

    expected: int = 0
    received: int = 0
    lost: int = 0  # expected, never received
    repeated: int = 0  # received more than once
    reordered: int = 0  # received after a newer one
    unexpected: int = 0  # received, but not one of the expected
    coalesced: int = 0  # "/": no frame ended at it, but a later frame showed it (not lost, not a fault)

    @property
    def faults(self) -> int:
        return self.lost + self.repeated + self.reordered + self.unexpected


def judge(seen: Sequence[int | None], first: int, last: int) -> Verdict:
    """``seen``: positions in arrival order (``None``: matches nothing); every one of ``first..last`` is expected."""
    expected = range(first, last + 1)
    counts = Counter(seen)
    known = [i for i in seen if i is not None]
    return Verdict(
        expected=len(expected),
        received=len(seen),
        lost=sum(1 for i in expected if i not in counts),
        repeated=sum(n - 1 for n in counts.values() if n > 1),
        reordered=sum(1 for a, b in zip(known, known[1:], strict=False) if b < a),
        unexpected=sum(n for i, n in counts.items() if i is None or i not in expected),
    )


def window_index(closes: Sequence[float], window: int = WINDOW) -> dict[tuple[float, ...], int]:
    """Each run of ``window`` consecutive stored closes -> the position of its newest (oldest first)."""
    return {tuple(closes[i - window + 1 : i + 1]): i for i in range(window - 1, len(closes))}


def feed_positions(frames: Iterable[bytes], closes: dict[str, Sequence[float]]) -> dict[str, list[int | None]]:
    """Per coin, the stored position each ``/`` frame ends at, in arrival order (``None``: no stored window)."""
    index = {coin: window_index(values) for coin, values in closes.items()}
    seen: dict[str, list[int | None]] = {coin: [] for coin in closes}
    for raw in frames:
        frame = json.loads(raw)
        coin = frame["coin"]
        seen.setdefault(coin, []).append(index.get(coin, {}).get(tuple(frame["values"])))
    return seen


def missing(positions: Sequence[int | None], last: int) -> list[int]:
    """The stored positions after the first frame's that no frame ended at."""
    if not positions or positions[0] is None:
        return []
    got = set(positions)
    return [i for i in range(positions[0] + 1, last + 1) if i not in got]


def judge_feed(frames: Iterable[bytes], closes: dict[str, Sequence[float]]) -> Verdict:
    """One ``/`` stayer's frames, in arrival order (the initial ones first), against each coin's stored closes.

    Each coin's first frame is where the client came in; every close stored after it is expected once, in order.
    A close no frame ended at is coalesced, not lost, when a later frame shows it among its ``WINDOW`` values
    (the frame replaced one not yet sent, README "The websocket contract"); the newest must come.
    """
    verdict = Verdict()
    for coin, positions in feed_positions(frames, closes).items():
        if not positions or positions[0] is None:
            verdict += Verdict(received=len(positions), unexpected=len(positions) or 1)
            continue
        judged = judge(positions[1:], positions[0] + 1, len(closes.get(coin, ())) - 1)
        got = {i for i in positions if i is not None}
        judged.coalesced = sum(
            1 for i in missing(positions, len(closes.get(coin, ())) - 1) if any(i < j < i + WINDOW for j in got)
        )
        judged.lost -= judged.coalesced
        verdict += judged
    return verdict


@dataclass
class StreamLog:
    """What one stream stayer got on one stream, in arrival order: closes' open times, updates' (open time, L)."""

    closes: list[int] = field(default_factory=list)
    updates: list[tuple[int, int]] = field(default_factory=list)
    late_updates: int = 0  # an update of a kline whose close had already arrived: the stream went back

    def add(self, *, closed: bool, open_ms: int, last_trade: int) -> None:
        if closed:
            self.closes.append(open_ms)
        elif self.closes and open_ms <= max(self.closes):
            self.late_updates += 1
        else:
            self.updates.append((open_ms, last_trade))


@dataclass
class UpdateVerdict(_Counts):
    received: int = 0
    lost: int = 0  # a round skipped within one kline
    reordered: int = 0  # not after the previous one, or an update of a kline already closed
    skipped_at_close: int = 0  # rounds skipped where the kline changed: updates of a closed kline are not sent


def judge_updates(log: StreamLog) -> UpdateVerdict:
    """Updates carry the exchange's round in ``k.L`` (one more per update of a stream): each must follow the last."""
    verdict = UpdateVerdict(received=len(log.updates), reordered=log.late_updates)
    for (open_a, round_a), (open_b, round_b) in zip(log.updates, log.updates[1:], strict=False):
        if (open_b, round_b) <= (open_a, round_a):
            verdict.reordered += 1
        elif round_b > round_a + 1:
            if open_b == open_a:
                verdict.lost += round_b - round_a - 1
            else:
                verdict.skipped_at_close += round_b - round_a - 1
    return verdict


def judge_stream_closes(log: StreamLog, sent: Sequence[int]) -> Verdict:
    """The closes one stream stayer got on a stream against the open times the exchange closed while it was there."""
    position = {open_ms: n for n, open_ms in enumerate(sent)}
    return judge([position.get(open_ms) for open_ms in log.closes], 0, len(sent) - 1)
