"""Scenario 2, fan-out: one stored close reaches M idle clients across daphne processes sharing Redis.

The real ``ingest_klines`` reads the scripted exchange and stores and
publishes the close; two daphne processes push it to their clients. Each
client's time is when its event loop first saw the updated frame; the clock
starts at the kline's ``stored_at`` (the ingest stamps it just before the
insert, so the insert itself counts against us).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal

from bench import load
from bench.options import Options
from bench.report import check, fmt, latency_summary
from bench.scenarios import SYMBOLS, Outcome
from bench.stack import Stack, exchange_call, wait_for_streams
from bench.wsclient import FeedConnection
from klines.testing.servers import exchange_urls

DATABASE = "bench_fanout"
COIN = "BTCUSDT"
WAIT_SECONDS = 15.0


def _update_time(updates: list[tuple[float, bytes]], close: float) -> float | None:
    """When the updated COIN frame (newest value == close) arrived, if it did."""
    for arrived, payload in updates:
        frame = json.loads(payload)
        if frame["coin"] == COIN and frame["values"] and frame["values"][-1] == close:
            return arrived
    return None


async def run(stack: Stack, options: Options, redis_url: str) -> Outcome:
    env = stack.env(DATABASE, REDIS_URL=redis_url)
    stack.prepare_database(env, symbols=SYMBOLS, count=30)
    ports = [stack.daphne(f"fanout-daphne-{i}", env)[1] for i in range(options.daphnes)]
    _, exchange_port = stack.exchange("fanout-exchange", SYMBOLS, env)
    ingest_env = {**env, **exchange_urls(exchange_port)}
    stack.ingest("fanout-ingest", ingest_env, SYMBOLS)
    await asyncio.to_thread(wait_for_streams, exchange_port, 1)

    updated: set[int] = set()
    everyone = asyncio.Event()

    def note_update(connection: FeedConnection) -> None:
        updated.add(id(connection))
        if len(updated) >= options.idle:
            everyone.set()

    clients = await load.open_idle(
        ports, count=options.idle, concurrency=options.concurrency, keep_updates=True, on_update=note_update
    )
    if clients.errors:
        raise RuntimeError(f"{clients.errors} of {options.idle} idle clients failed: {clients.first_error}")
    collection = stack.klines(DATABASE)

    async def one_close() -> tuple[dict, list[float]]:
        clients.clear_updates()
        updated.clear()
        everyone.clear()
        sent = await asyncio.to_thread(exchange_call, exchange_port, f"/bench/close?symbols={COIN}")
        open_time = datetime.fromtimestamp(sent["open_ms"][COIN] / 1000, tz=UTC)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone.wait(), WAIT_SECONDS)
        await asyncio.sleep(0.2)  # let stragglers' frames land before judging
        stored = await asyncio.to_thread(
            collection.find_one, {"symbol": COIN, "interval": "1m", "open_time": open_time}
        )
        if stored is None:
            raise RuntimeError(f"the ingest did not store {COIN} {open_time}")
        stored_at = stored["stored_at"].timestamp()
        close = float(Decimal(str(stored["close"])))
        arrivals = [_update_time(c.updates, close) for c in clients.connections]
        got = [t - stored_at for t in arrivals if t is not None]
        summary = {
            "received": len(got),
            "missing": len(arrivals) - len(got),
            "exchange_to_stored_ms": (stored_at - sent["sent_at"]) * 1000,
            **latency_summary(got),
        }
        await asyncio.sleep(1.0)
        return summary, got

    latencies: list[float] = []
    rounds = []
    try:
        await asyncio.sleep(1.0)
        # The first close after start-up pays one-off costs (imports, Redis connections); reported apart.
        first, _ = await one_close()
        for _ in range(options.fanout_rounds):
            summary, got = await one_close()
            rounds.append(summary)
            latencies += got
    finally:
        await clients.close()

    summary = latency_summary(latencies)
    missing = sum(r["missing"] for r in rounds)
    outcome = Outcome(
        "fanout",
        {
            "idle_clients": options.idle,
            "daphne_processes": options.daphnes,
            "channel_layer": "channels_redis",
            "rounds": rounds,
            "first_close_after_start": first,
            "missing": missing,
            **summary,
        },
    )
    ingest_ms = [r["exchange_to_stored_ms"] for r in rounds]
    outcome.rows.append(
        (
            f"fan-out ({options.idle} idle clients, {options.daphnes} daphne + Redis, {len(rounds)} closes)",
            "stored -> client has the frame",
            f"p50 {fmt(summary['p50_ms'])} / p99 {fmt(summary['p99_ms'])} / max {fmt(summary['max_ms'])} ms",
            f"{missing} missed; exchange -> stored {fmt(min(ingest_ms))}-{fmt(max(ingest_ms))} ms; "
            f"first close after start-up (not counted): max {fmt(first['max_ms'])} ms",
        )
    )
    p99 = summary["p99_ms"] if not missing else float("nan")
    outcome.targets = [check(f"fan-out p99 to {options.idle} clients (ms)", p99, "<", 100)]
    return outcome
