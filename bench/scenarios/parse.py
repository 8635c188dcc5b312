"""Scenario 3b, the pure parse rate of ``parse_stream_message`` (no socket, no database)."""

from __future__ import annotations

import json
import statistics
import time

from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from bench.scenarios.burst import burst_symbols
from klines.binance.parse import parse_stream_message
from klines.simexchange.series import KlineSeries

REPEATS = 5


def sample_frames(count: int) -> list[str]:
    """Real-format combined-stream frames: mostly unclosed updates, one in ten a close."""
    series = KlineSeries(interval="1m", interval_ms=60_000)
    symbols = [s.upper() for s in burst_symbols(200)]
    frames = []
    for n in range(count):
        symbol, index = symbols[n % len(symbols)], 29_000_000 + n // len(symbols)
        closed = n % 10 == 0
        kline = series.kline(symbol, index) if closed else series.partial(symbol, index, 0.5)
        # A close's event comes just after its minute ends (the parser refuses closes dated after E).
        event_ms = (index + 1) * 60_000 if closed else index * 60_000 + 30_000
        frames.append(json.dumps(kline.stream_event(closed=closed, event_ms=event_ms)))
    return frames


def run(options: Options) -> Outcome:
    frames = sample_frames(options.parse_messages)
    for frame in frames[:2000]:  # warm-up
        parse_stream_message(frame)
    rates = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        for frame in frames:
            parse_stream_message(frame)
        rates.append(len(frames) / (time.perf_counter() - began))
    best, median = max(rates), statistics.median(rates)
    data = {"messages": len(frames), "repeats": REPEATS, "best_per_s": best, "median_per_s": median}
    outcome = Outcome("parse", data | {"rates": rates})
    figures = f"{fmt(median, 0)} msg/s median, {fmt(best, 0)} best"
    outcome.rows.append((f"parser ({len(frames)} frames x {REPEATS})", "parse_stream_message", figures, "one core"))
    outcome.targets = [check("parser rate (msg/s, median)", median, ">=", 50_000)]
    return outcome
