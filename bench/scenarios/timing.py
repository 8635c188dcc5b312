"""Scenario timing (issue 15): what timing the fan-out where frames are sent costs, in one process.

``idle`` :class:`~klines.serving.outbox.Outbox`s (``/``: one close each) or
:class:`~klines.serving.stream_outbox.FrameQueue`s (streams: ten updates each) whose
sends return at once; CPU per fan-out for three subjects interleaved in rotated order:
``untimed``, ``per event`` (shipped: one :class:`~klines.serving.delivery.Delivery`)
and ``per frame`` (a histogram observation per frame, not taken).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Histogram

from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from klines.serving.delivery import CLOSE, UPDATE, Delivery
from klines.serving.outbox import Outbox
from klines.serving.stream_outbox import FrameQueue

SUBJECTS = ("untimed", "per event", "per frame")
UPDATES_PER_BATCH = 10
MAX_OWED = 1 << 30  # nothing here is slow
# The per-frame alternative observes into a histogram of its own (the real one's buckets), not the served one.
PER_FRAME = Histogram(
    "bench_fanout_seconds", "", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1), registry=CollectorRegistry()
)


async def _too_slow(owed: int) -> None:
    raise AssertionError("no connection is slow here")


class _Connections:
    """``count`` connections whose sends return at once; counts the frames sent."""

    def __init__(self, count: int, *, streams: bool) -> None:
        self.sent, self.expected, self.started, self.observe, self.frame = 0, 0, 0.0, False, "{}"
        self.all_sent = asyncio.Event()
        self.newest = datetime(2026, 1, 1, tzinfo=UTC)  # the open time of the frame's newest close
        limits = {"max_owed": MAX_OWED, "too_slow": _too_slow}
        book = (lambda _: self.frame, lambda _: self.newest)  # what an Outbox asks for: the frame, its newest close
        self.senders = [FrameQueue(self._send, **limits) if streams else Outbox(*book, self._send, **limits)
                        for _ in range(count)]  # fmt: skip
        for sender in self.senders:
            sender.start()

    async def _send(self, frame: str) -> None:
        self.sent += 1
        if self.sent == self.expected:
            self.all_sent.set()
        if self.observe:
            PER_FRAME.observe(time.time() - self.started)

    def stop(self) -> None:
        for sender in self.senders:
            sender.stop()


async def _fan_out(connections: _Connections, subject: str, round_: int, *, streams: bool) -> float:
    """CPU seconds for one event fanned out to every connection and sent."""
    frames = UPDATES_PER_BATCH if streams else 1
    connections.expected = connections.sent + frames * len(connections.senders)
    connections.all_sent.clear()
    connections.frame = f'{{"round": {round_}, "pad": "{"x" * 900}"}}'  # a new frame of the book's size
    connections.newest += timedelta(minutes=1)  # a newer close: the outbox sends it
    connections.started = time.time()
    connections.observe = subject == "per frame"
    began = time.process_time()
    delivery = Delivery(UPDATE if streams else CLOSE, connections.started) if subject == "per event" else None
    for sender in connections.senders:
        if streams:
            for _ in range(frames):
                sender.put(connections.frame, delivery)
        else:
            sender.offer(["BTCUSDT"], delivery)
    if delivery is not None:
        delivery.seal()
    await connections.all_sent.wait()
    return time.process_time() - began


async def _measure(count: int, rounds: int, *, streams: bool) -> dict[str, list[float]]:
    connections = _Connections(count, streams=streams)
    try:
        for warm in range(3):
            await _fan_out(connections, SUBJECTS[warm % 3], -warm, streams=streams)
        seconds: dict[str, list[float]] = {subject: [] for subject in SUBJECTS}
        for round_ in range(rounds):
            for i in range(len(SUBJECTS)):
                subject = SUBJECTS[(round_ + i) % len(SUBJECTS)]
                seconds[subject].append(await _fan_out(connections, subject, round_, streams=streams))
        return seconds
    finally:
        connections.stop()


async def run(options: Options) -> Outcome:
    count, rounds = options.idle, 10 if options.quick else 30
    outcome = Outcome("timing", {"connections": count, "rounds": rounds})
    for endpoint, streams in (("/", False), ("streams", True)):
        seconds = await _measure(count, rounds, streams=streams)
        median = {subject: statistics.median(values) for subject, values in seconds.items()}
        ratio = {subject: median[subject] / median["untimed"] for subject in SUBJECTS}
        outcome.data[endpoint] = {"seconds": seconds, "median_s": median, "ratio_to_untimed": ratio}
        per_connection = {subject: median[subject] / count * 1e6 for subject in SUBJECTS}
        what = "one close, one frame each" if not streams else f"one batch, {UPDATES_PER_BATCH} frames each"
        title = f"fan-out timing, {endpoint} ({count:,} connections, {what}, {rounds} rounds)"
        figures = ", ".join(
            f"{s} {fmt(median[s] * 1000, 2)} ms ({fmt(per_connection[s], 2)} us/conn)" for s in SUBJECTS
        )
        notes = f"per event / untimed {ratio['per event']:.3f}; per frame / untimed {ratio['per frame']:.3f}"
        outcome.rows.append((title, "CPU per fan-out, median", figures, notes))
        name = f"fan-out timing cost, {endpoint} (per event / untimed)"
        outcome.targets.append(check(name, ratio["per event"], "<=", 1.10))
    return outcome
