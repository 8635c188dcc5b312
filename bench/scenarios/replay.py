"""Scenario replay: ``/market/replay/stream`` at ``speed=0`` to one client and to 100, against a bare server.

Two streams of one-minute klines (:mod:`bench.bulkseed`) replayed by daphne as fast as
the clients read (:mod:`bench.wsclient` clients in this process, every frame counted,
the close checked); the baseline is a bare ``websockets`` server sending the very frames
daphne sent, then the same close (:mod:`bench.baselines`). Rounds interleave the two,
order rotated; events/s from opening the connections to the last close frame.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime

from bench import bulkseed, load
from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from bench.stack import Stack, cpu_seconds
from bench.wsclient import FeedConnection

DATABASE = "bench_replay"
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
CROWD = 100  # clients at once, each replaying a twentieth of the one client's range
CLOSE = b"\x03\xe8replay complete"  # 1000, the service's reason
TIME_LIMIT = 600.0


class ReplayClient(FeedConnection):
    """Counts the text frames until the server's close; keeps them with ``keep``."""

    def __init__(self, port: int, path: str, keep: bool) -> None:
        super().__init__(port, initial=0, path=path)
        self.count, self.keep, self.kept = 0, keep, []

    def on_text(self, payload: bytes) -> None:
        self.count += 1
        if self.keep:
            self.kept.append(payload)


async def replay(port: int, path: str, clients: int, events: int, *, keep: bool = False) -> tuple[float, list[bytes]]:
    """``clients`` replays of ``path`` at once: seconds from opening them to the last close, and one's frames."""
    began = time.monotonic()
    opened = await load.open_many([port] * clients, lambda p: ReplayClient(p, path, keep), concurrency=clients)
    done = opened.connections
    await asyncio.wait_for(asyncio.gather(*(c.closed for c in done)), TIME_LIMIT)
    wrong = [c for c in done if c.count != events or c.close_payload != CLOSE]
    if opened.errors or wrong:
        got = f"{wrong[0].count} frames, close {wrong[0].close_payload!r}" if wrong else opened.first_error
        raise RuntimeError(f"replay on {port}: {opened.errors} failed, {len(wrong)} short of {events} ({got})")
    return max(c.closed_at for c in done) - began, done[0].kept


async def run(stack: Stack, options: Options) -> Outcome:
    assert stack.mongo is not None
    events = options.replay_events
    env = stack.env(DATABASE, KLINE_SYMBOLS=",".join(SYMBOLS).lower(), KLINE_INTERVAL="1m")
    stack.prepare_database(env)
    seeded = bulkseed.seed(
        stack.mongo.uri, DATABASE, "klines", symbols=SYMBOLS, interval="1m", minutes=events // 2, now=datetime.now(UTC)
    )
    streams = "/".join(f"{s.lower()}@kline_1m" for s in SYMBOLS)

    def path(count: int) -> str:  # the first ``count`` events: count / 2 minutes of both streams
        end = seeded.first_open_ms + (count // 2 - 1) * 60_000
        return f"/market/replay/stream?streams={streams}&startTime={seeded.first_open_ms}&endTime={end}&speed=0"

    daphne, daphne_port = stack.daphne("replay-daphne", env)
    _, frames = await replay(daphne_port, path(events), 1, events, keep=True)  # warm-up, and the frames
    bare, bare_port = stack.bare([f.decode() for f in frames], close_reason=CLOSE[2:].decode())
    identical = (await replay(bare_port, "/", 1, events, keep=True))[1] == frames
    subjects = {"daphne": (daphne, daphne_port, path), "bare": (bare, bare_port, lambda count: f"/?n={count}")}
    runs = {(key, n): [] for key in subjects for n in (1, CROWD)}
    cpu = dict.fromkeys(subjects, 0.0)
    for round_no in range(options.replay_rounds):
        for key in list(subjects)[round_no % 2 :] + list(subjects)[: round_no % 2]:
            process, port, where = subjects[key]
            before = cpu_seconds(process)
            for clients, each in ((1, events), (CROWD, events // 20)):
                seconds, _ = await replay(port, where(each), clients, each)
                runs[key, clients].append(clients * each / seconds)
            cpu[key] += cpu_seconds(process) - before
    rate = {f"{key} {n}": statistics.median(values) for (key, n), values in runs.items()}
    per_event = {key: cpu[key] / (options.replay_rounds * events * 6) * 1e6 for key in subjects}
    ratios = {n: rate[f"daphne {n}"] / rate[f"bare {n}"] for n in (1, CROWD)}
    data = {"events": events, "crowd": CROWD, "crowd_events_each": events // 20, "rounds": options.replay_rounds}
    data |= {"frames_identical": identical, "events_per_s": rate, "ratio_daphne_over_bare": ratios}
    data |= {"events_per_s_rounds": {f"{k} {n}": v for (k, n), v in runs.items()}, "server_cpu_us_per_event": per_event}
    outcome = Outcome("replay", data)
    title = f"replay, speed=0 (2 streams of 1m: {events:,} events; {CROWD} x {events // 20:,})"
    for key, label in (("daphne", "a daphne /market/replay/stream"), ("bare", "b bare websockets, same frames")):
        figures = f"1 client {fmt(rate[f'{key} 1'], 0)}, {CROWD} clients {fmt(rate[f'{key} {CROWD}'], 0)} events/s"
        outcome.rows.append((title, label, figures, f"server CPU {fmt(per_event[key], 1)} us per event"))
    same = "frames identical" if identical else "FRAMES DIFFER"
    outcome.rows.append((title, "ratio a/b", f"{ratios[1]:.2f} (1 client), {ratios[CROWD]:.2f} ({CROWD})", same))
    outcome.targets = [check("replay frames identical to the bare server's (1 = yes)", float(identical), ">=", 1)]
    return outcome
