"""Scenario ``soak``: clients churn on the whole stack for minutes while klines close; nothing may leak or be lost.

Scripted exchange -> ``ingest_klines`` -> Redis -> the daphnes; the
five coins close on command every ``soak_close_seconds``. *Stayers* (``/`` and stream
clients) stay connected and must get every close once and in order, and every update
in order (:mod:`bench.stayers`); *churners* (:mod:`bench.soakclients`) connect and
leave at ``soak_rate`` and ``soak_stream_rate``. Each daphne's RSS and fds after the
warm-up and at the end, churners stopped, give the growth; the least-squares slope
over the second half gives the trend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal

import psutil
import pymongo

from bench import load
from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import SYMBOLS, Outcome
from bench.scenarios.burst import UNPACED_REST_WEIGHT, wait_until_settled
from bench.soakclients import ChurnTally, churn, feed_session, open_stream_stayer, stream_session
from bench.stack import Stack, exchange_call, wait_for_streams
from bench.stayers import StreamLog, UpdateVerdict, Verdict, judge_feed, judge_stream_closes, judge_updates
from klines.testing.servers import exchange_urls

DATABASE = "bench_soak"
STREAMS = [f"{s}@kline_1m" for s in SYMBOLS]
SAMPLE_SECONDS = 5.0
SETTLE_SECONDS = 3.0  # churners stopped: daphne reaps closed connections once a second
TAIL_SECONDS = 15.0  # after the last close, time for it to reach every stayer
MIB = 2**20


class Closer:
    """Closes every coin's next kline every ``every`` seconds; keeps the exchange's log of what it closed."""

    def __init__(self, port: int, every: float) -> None:
        self.port, self.every = port, every
        self.sent: dict[str, list[int]] = {}  # symbol -> open times closed, in order
        self.task: asyncio.Task | None = None

    async def close_all(self) -> dict:
        sent = await asyncio.to_thread(exchange_call, self.port, "/bench/close?symbols=*")
        for symbol, open_ms in sent["open_ms"].items():
            self.sent.setdefault(symbol, []).append(open_ms)
        return sent

    def start(self) -> None:
        async def every() -> None:
            while True:
                began = time.monotonic()
                await self.close_all()
                await asyncio.sleep(max(0.0, self.every - (time.monotonic() - began)))

        self.task = asyncio.create_task(every())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def sample(processes: Sequence[psutil.Process]) -> list[tuple[int, int]]:
    """(RSS bytes, open fds) of each process."""
    return [(p.memory_info().rss, p.num_fds()) for p in processes]


@dataclass
class Stored:
    """Each coin's stored klines, oldest first: closes as the feed's payloads give them, and open times (ms)."""

    closes: dict[str, list[float]]
    open_ms: dict[str, list[int]]


def stored_klines(collection: pymongo.collection.Collection) -> Stored:
    stored = Stored({}, {})
    for symbol in SYMBOLS:
        rows = collection.find({"symbol": symbol.upper(), "interval": "1m"}, {"close": 1, "open_time": 1})
        rows = list(rows.sort("open_time", 1))
        stored.closes[symbol.upper()] = [float(Decimal(str(row["close"].to_decimal()))) for row in rows]
        stored.open_ms[symbol.upper()] = [round(row["open_time"].timestamp() * 1000) for row in rows]
    return stored


async def run(stack: Stack, options: Options, redis_url: str) -> Outcome:
    env = stack.env(DATABASE, REDIS_URL=redis_url)
    stack.prepare_database(env, symbols=SYMBOLS, count=30)
    _, exchange_port = stack.exchange("soak-exchange", SYMBOLS, env)
    ingest_env = {**env, **exchange_urls(exchange_port), "BINANCE_REST_WEIGHT_PER_MINUTE": UNPACED_REST_WEIGHT}
    stack.ingest("soak-ingest", ingest_env, SYMBOLS)
    daphnes = [stack.daphne(f"soak-daphne-{i}", env) for i in range(options.daphnes)]
    ports = [port for _, port in daphnes]
    processes = [psutil.Process(p.pid) for p, _ in daphnes]
    await asyncio.to_thread(wait_for_streams, exchange_port, 1)
    collection = stack.klines(DATABASE)
    closer = Closer(exchange_port, options.soak_close_seconds)
    try:
        await asyncio.to_thread(wait_until_settled, collection)
        await closer.close_all()  # one close before the stayers: start-up's one-off costs
        await asyncio.to_thread(wait_until_settled, collection)
        closer.sent.clear()
        return await _soak(options, ports, processes, closer, collection)
    finally:
        await closer.stop()


async def _soak(options: Options, ports: list[int], processes: list[psutil.Process], closer: Closer, collection):
    count = options.soak_stayers
    feed = await load.open_idle(ports, count=count * len(ports), concurrency=20, keep_updates=True)
    if feed.errors:
        await feed.close()
        raise RuntimeError(f"{feed.errors} '/' stayers failed: {feed.first_error}")
    feed_clients = list(feed.connections)
    streamers = [
        (port, await open_stream_stayer(port, STREAMS, combined_url=n % 2 == 0)) for port in ports for n in range(count)
    ]
    feed_tally, stream_tally = ChurnTally(), ChurnTally()

    async def churn_for(seconds: float) -> None:
        common = {"seconds": seconds, "concurrency": options.soak_concurrency}
        await asyncio.gather(
            churn(ports, feed_session, rate=options.soak_rate, tally=feed_tally, **common),
            churn(ports, stream_session(STREAMS), rate=options.soak_stream_rate, tally=stream_tally, **common),
        )

    try:
        closer.start()
        await churn_for(options.soak_warmup)
        await asyncio.sleep(SETTLE_SECONDS)
        baseline = sample(processes)
        warm = (dict(feed_tally.completed), dict(stream_tally.completed))
        samples: list[tuple[float, list[tuple[int, int]]]] = [(0.0, baseline)]
        began = time.monotonic()
        churning = asyncio.create_task(churn_for(options.soak_seconds))
        while not churning.done():
            await asyncio.wait([churning], timeout=SAMPLE_SECONDS)
            samples.append((time.monotonic() - began, sample(processes)))
        await churning
        elapsed = time.monotonic() - began
        await asyncio.sleep(SETTLE_SECONDS)
        final = sample(processes)
        await closer.stop()
        await closer.close_all()  # the last close: every stayer must get it
        tail, stored = await _tail(feed_clients, [s for _, s in streamers], closer, collection)
        closes = stored.closes
    finally:
        await closer.stop()
        await feed.close()
        for _, stayer in streamers:
            await stayer.close(5.0)

    judged = {port: {"feed": Verdict(), "closes": Verdict(), "updates": UpdateVerdict()} for port in ports}
    for connection in feed_clients:
        frames = [*connection.frames, *(payload for _, payload in connection.updates)]
        judged[connection.port]["feed"] += judge_feed(frames, closes)
    for port, stayer in streamers:
        for symbol, sent in closer.sent.items():
            log = stayer.logs.get(symbol)
            if log is None:
                judged[port]["closes"] += Verdict(expected=len(sent), lost=len(sent))
                continue
            judged[port]["closes"] += judge_stream_closes(log, sent)
            judged[port]["updates"] += judge_updates(log)
    for tally, before in zip((feed_tally, stream_tally), warm, strict=True):  # the soak's own, per port
        tally.completed.subtract(before)
    return _outcome(options, ports, baseline, final, samples, elapsed, (feed_tally, stream_tally), judged, tail)


def trend_percent(points: Sequence[tuple[float, int]], baseline: int, over: float) -> float:
    """Least-squares slope of (seconds, RSS) points, as % of ``baseline`` per ``over`` seconds; NaN if too few."""
    n = len(points)
    mean_t, mean_r = sum(t for t, _ in points) / max(n, 1), sum(r for _, r in points) / max(n, 1)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if n < 3 or var == 0:
        return float("nan")
    return sum((t - mean_t) * (r - mean_r) for t, r in points) / var * over / baseline * 100


def _outcome(options: Options, ports, baseline, final, samples, elapsed, tallies, judged, tail) -> Outcome:
    """RSS, fds and stayers per daphne: the JSON, the table rows and the verdicts."""
    feed_tally, stream_tally = tallies
    feeds, streams = feed_tally.completed.total(), stream_tally.completed.total()
    errors = feed_tally.errors + stream_tally.errors
    first_error = feed_tally.first_error or stream_tally.first_error
    daphnes = []
    for n, port in enumerate(ports):
        (rss0, fds0), (rss1, fds1) = baseline[n], final[n]
        points = [(t, values[n][0]) for t, values in samples if t >= options.soak_seconds / 2]
        d = {"port": port, "rss_baseline_mib": rss0 / MIB, "rss_final_mib": rss1 / MIB}
        d |= {"rss_peak_mib": max(values[n][0] for _, values in samples) / MIB}
        d |= {"rss_growth_percent": (rss1 - rss0) / rss0 * 100}
        d |= {"rss_trend_percent_per_10min": trend_percent(points, rss0, 600.0), "fds_baseline": fds0}
        d |= {"fds_final": fds1, "fds_peak": max(values[n][1] for _, values in samples)}
        d |= {"feed_churns": feed_tally.completed.get(port, 0), "stream_churns": stream_tally.completed.get(port, 0)}
        daphnes.append(d | {f"stayers_{kind}": asdict(verdict) for kind, verdict in judged[port].items()})
    total = {"feed": Verdict(), "closes": Verdict(), "updates": UpdateVerdict()}
    for verdicts in judged.values():
        for kind, verdict in verdicts.items():
            total[kind] += verdict
    data = {"seconds": options.soak_seconds, "warmup_seconds": options.soak_warmup, "elapsed_s": elapsed}
    data |= {"close_every_s": options.soak_close_seconds, "stayers_per_daphne_each_kind": options.soak_stayers}
    data |= {"churn_rate_per_s": {"feed": options.soak_rate, "streams": options.soak_stream_rate}}
    data |= {"feed_churns": feeds, "stream_churns": streams, "churn_errors": errors}
    data |= {"first_churn_error": first_error, "events_after_unsubscribe": stream_tally.after_unsubscribe}
    data |= {"tail_s": tail, "daphnes": daphnes}
    data["samples"] = [(round(t, 1), [(round(r / MIB, 2), f) for r, f in values]) for t, values in samples]
    outcome = Outcome("soak", data)
    title = f"churn soak ({options.soak_seconds:.0f} s after {options.soak_warmup:.0f} s warm-up, {len(ports)} daphne"
    title += f" + Redis, closes every {options.soak_close_seconds:g} s)"
    for n, d in enumerate(daphnes):
        f, c, u = d["stayers_feed"], d["stayers_closes"], d["stayers_updates"]
        figures = f"RSS {fmt(d['rss_baseline_mib'])} -> {fmt(d['rss_final_mib'])} MiB ({d['rss_growth_percent']:+.1f}%"
        figures += f", trend {d['rss_trend_percent_per_10min']:+.1f}%/10 min); fds {d['fds_baseline']} -> "
        figures += f"{d['fds_final']} (peak {d['fds_peak']})"
        notes = f"stayers '/': {f['received']:,} frames, lost {f['lost']} (coalesced {f['coalesced']}), repeated "
        notes += f"{f['repeated']}, reordered {f['reordered']}, unknown {f['unexpected']}; streams: closes "
        notes += f"{c['received']:,} lost {c['lost']} repeated {c['repeated']} reordered {c['reordered']}; updates "
        notes += f"{u['received']:,} lost {u['lost']} reordered {u['reordered']} (at a close {u['skipped_at_close']})"
        subject = f"daphne-{n}: {d['feed_churns']:,} '/' + {d['stream_churns']:,} stream churns"
        outcome.rows.append((title if n == 0 else "", subject, figures, notes))
        outcome.targets.append(check(f"soak daphne-{n} RSS growth after warm-up (%)", d["rss_growth_percent"], "<", 5))
        if options.soak_seconds >= 120:  # a shorter soak's trend is noise
            trend = d["rss_trend_percent_per_10min"]
            outcome.targets.append(check(f"soak daphne-{n} RSS trend, 2nd half (%/10 min)", trend, "<", 5))
        outcome.targets.append(check(f"soak daphne-{n} fd growth", float(d["fds_final"] - d["fds_baseline"]), "<=", 0))
    figures = f"{feeds:,} '/' and {streams:,} stream sessions ({fmt((feeds + streams) / elapsed, 0)}/s)"
    notes = f"{errors} errors{f' (first: {first_error})' if errors else ''}; {stream_tally.after_unsubscribe} "
    outcome.rows.append(
        ("", "churners", figures, f"{notes}events after UNSUBSCRIBE; every stayer had the last close in {tail:.1f} s")
    )
    feed, closes, updates = total["feed"], total["closes"], total["updates"]
    faults = float(feed.repeated + feed.reordered + feed.unexpected + closes.faults - closes.lost)
    outcome.targets += [
        check("soak stayers: closes lost ('/' + streams)", float(feed.lost + closes.lost), "<=", 0),
        check("soak stayers: closes repeated/reordered", faults, "<=", 0),
        check("soak stream stayers: updates lost/reordered", float(updates.lost + updates.reordered), "<=", 0),
        check("soak churn errors", float(errors + stream_tally.after_unsubscribe), "<=", 0),
    ]
    return outcome


async def _tail(feed: Sequence, streamers: Sequence, closer: Closer, collection) -> tuple[float, Stored]:
    """Wait until every stayer has the last close of every coin (capped); (seconds it took, what is stored)."""
    last = {symbol: sent[-1] for symbol, sent in closer.sent.items()}
    began = time.monotonic()
    while True:
        stored = await asyncio.to_thread(stored_klines, collection)
        newest = {symbol: stored.closes[symbol][-1] for symbol in last if stored.open_ms[symbol][-1] == last[symbol]}
        seen = [{(f := json.loads(p))["coin"]: f["values"][-1] for _, p in c.updates} for c in feed]  # newest each
        feed_short = len(newest) < len(last) or any(close != newest[coin] for s in seen for coin, close in s.items())
        stream_short = any(
            last[symbol] not in s.logs.get(symbol, StreamLog()).closes for s in streamers for symbol in last
        )
        if (not feed_short and not stream_short) or time.monotonic() - began >= TAIL_SECONDS:
            return time.monotonic() - began, stored
        await asyncio.sleep(0.25)
