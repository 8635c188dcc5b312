"""Scenario relay: exchange -> ingest -> Redis -> 2 daphne -> 1,000 stream clients.

500 scripted streams updated every 250 ms, relayed by the real ingest every
100 ms; each client names ``relay_streams_per_client`` streams. Over the window:
latency from the exchange's send, updates lost or reordered per stream, CPU per
process; then every subscription must reach the exchange's last round. Clients read each
frame's stream, ``E`` (send time) and ``k.L`` (round) without decoding the JSON: a round
skipped is lost, one not advancing reordered; latency is the receipt's wall clock minus ``E``.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil

from bench import load
from bench.options import Options
from bench.report import check, fmt, latency_summary
from bench.scenarios import Outcome
from bench.scenarios.burst import UNPACED_REST_WEIGHT, burst_symbols, wait_until_settled
from bench.stack import Stack, cpu_seconds, exchange_call, wait_for_streams
from bench.wsclient import FeedConnection
from klines.testing.servers import exchange_urls

DATABASE = "bench_relay"
WARMUP_SECONDS = 5.0
TAIL_SECONDS = 15.0  # after the window, time for the last round to arrive everywhere


def frame_fields(payload: bytes) -> tuple[bytes, int, int]:
    """(stream, E, k.L) of a combined kline frame ``{"stream":"..","data":{.."E":..,"k":{.."L":..}}}``."""
    start = payload.index(b'"stream":"') + 10
    stream = payload[start : payload.index(b'"', start)]
    e_at = payload.index(b'"E":', start) + 4
    event_ms = int(payload[e_at : payload.index(b",", e_at)])
    l_at = payload.index(b'"L":', e_at) + 4
    end = l_at
    while payload[end] in b"0123456789":
        end += 1
    return stream, event_ms, int(payload[l_at:end])


@dataclass
class Tally:
    """What every client saw; latencies only while ``measuring``."""

    measuring: bool = False
    latencies: array = field(default_factory=lambda: array("d"))  # seconds
    received: int = 0  # frames while measuring
    lost: Counter[bytes] = field(default_factory=Counter)  # stream -> updates skipped, summed over its clients
    reordered: Counter[bytes] = field(default_factory=Counter)


class StreamClient(FeedConnection):
    def __init__(self, port: int, streams: Sequence[str], tally: Tally) -> None:
        super().__init__(port, initial=0, path="/market/stream?streams=" + "/".join(streams))
        self.streams = list(streams)
        self.tally = tally
        self.last: dict[bytes, int] = {}  # stream -> newest round received

    def on_text(self, payload: bytes) -> None:
        now = time.time()
        stream, event_ms, round_ = frame_fields(payload)
        tally = self.tally
        last = self.last.get(stream)
        if last is None or round_ > last:
            self.last[stream] = round_
        if tally.measuring:
            tally.received += 1
            tally.latencies.append(now - event_ms / 1000)
            if last is not None and round_ > last + 1:
                tally.lost[stream] += round_ - last - 1
            elif last is not None and round_ <= last:
                tally.reordered[stream] += 1


def subscriptions(streams: Sequence[str], clients: int, per_client: int) -> list[list[str]]:
    """``per_client`` consecutive streams per client, wrapping, so every stream gets about the same subscribers."""
    return [[streams[(n * per_client + j) % len(streams)] for j in range(per_client)] for n in range(clients)]


async def run(stack: Stack, options: Options, redis_url: str) -> Outcome:
    symbols = burst_symbols(options.relay_symbols)
    streams = [f"{s}@kline_1m" for s in symbols]
    env = stack.env(DATABASE, REDIS_URL=redis_url, KLINE_SYMBOLS=",".join(symbols))
    stack.prepare_database(env)
    exchange, exchange_port = stack.exchange("relay-exchange", symbols, env)
    ingest_env = {**env, **exchange_urls(exchange_port), "BINANCE_REST_WEIGHT_PER_MINUTE": UNPACED_REST_WEIGHT}
    ingest = stack.ingest("relay-ingest", ingest_env, symbols)
    daphnes = [stack.daphne(f"relay-daphne-{i}", env) for i in range(options.daphnes)]
    await asyncio.to_thread(wait_for_streams, exchange_port, 1)
    # the start-up backfill (11 klines a symbol) is over before anything is measured
    await asyncio.to_thread(wait_until_settled, stack.klines(DATABASE))

    tally = Tally()
    plan = subscriptions(streams, options.relay_clients, options.relay_streams_per_client)
    clients = [(daphnes[n % len(daphnes)][1], names) for n, names in enumerate(plan)]  # ports alternating
    opened = await load.open_many(clients, lambda item: StreamClient(item[0], item[1], tally), concurrency=100)
    clients = opened.connections
    if opened.errors:
        await opened.close(time_limit=5.0)
        raise RuntimeError(f"{opened.errors} of {len(plan)} stream clients failed: {opened.first_error}")
    processes = {"clients (bench)": psutil.Process(), "ingest": ingest, "exchange": exchange}
    processes |= {f"daphne-{i}": p for i, (p, _) in enumerate(daphnes)}
    if stack.redis is not None:
        processes["redis"] = stack.redis.process
    try:
        await asyncio.sleep(WARMUP_SECONDS)
        cpu_before = {name: cpu_seconds(p) for name, p in processes.items()}
        before = await asyncio.to_thread(exchange_call, exchange_port, "/bench/status")
        tally.measuring, tally.latencies, tally.received = True, array("d"), 0
        began = time.monotonic()
        await asyncio.sleep(options.relay_seconds)
        tally.measuring = False
        window = time.monotonic() - began
        cpu = {name: (cpu_seconds(p) - cpu_before[name]) / window for name, p in processes.items()}
        after = await asyncio.to_thread(exchange_call, exchange_port, "/bench/status")
        # The rounds sent by now must reach every subscription; one still missing after TAIL_SECONDS is lost.
        last_round = 100 + after["rounds"][0]
        tail_began = time.monotonic()
        while True:
            short = [s for c in clients for s in c.streams if c.last.get(s.encode(), 0) < last_round]
            if not short or time.monotonic() - tail_began >= TAIL_SECONDS:
                break
            await asyncio.sleep(0.25)
        tail_s = time.monotonic() - tail_began
        closed = sum(1 for c in clients if c.closed.done())
    finally:
        await opened.close(time_limit=5.0)

    summary = latency_summary(tally.latencies)
    subscribers = len(plan) * options.relay_streams_per_client
    sent_rate = (after["sent"][0] - before["sent"][0]) / window
    delivered_rate = tally.received / window
    lost = sum(tally.lost.values())
    reordered = sum(tally.reordered.values())
    data = {"symbols": len(symbols), "clients": len(plan), "streams_per_client": options.relay_streams_per_client}
    data |= {"daphne_processes": options.daphnes, "window_s": window, "exchange_updates_per_s": sent_rate}
    data |= {"delivered_frames_per_s": delivered_rate, "expected_frames_per_s": sent_rate * subscribers / len(streams)}
    data |= {"lost": lost, "streams_with_loss": len(tally.lost), "reordered": reordered}
    data |= {"streams_with_reorder": len(tally.reordered), "subscriptions_short_at_end": len(short)}
    data |= {"tail_caught_up_s": tail_s, "clients_closed_by_server": closed, "cpu_cores": cpu, **summary}
    outcome = Outcome("relay", data)
    title = (
        f"relay ({len(symbols)} streams x 1m, {len(plan)} clients x {options.relay_streams_per_client} streams, "
        f"{options.daphnes} daphne + Redis, {window:.0f} s)"
    )
    cpu_note = ", ".join(f"{name} {value:.2f}" for name, value in cpu.items())
    figures = f"p50 {fmt(summary['p50_ms'])} / p99 {fmt(summary['p99_ms'])} / max {fmt(summary['max_ms'])} ms; "
    figures += f"{sent_rate:,.0f} updates/s in, {delivered_rate:,.0f} frames/s delivered"
    notes = f"lost {lost} ({len(tally.lost)} streams) + {len(short)} never arrived, reordered {reordered}; "
    notes += f"all caught up {tail_s:.1f} s after the window; {closed} clients closed; CPU cores: {cpu_note}"
    outcome.rows.append((title, "exchange sends (E) -> client has it", figures, notes))
    p99 = summary["p99_ms"]
    outcome.targets = [
        check("relay p99, exchange -> client (ms)", p99, "<", 250),
        check("relay updates lost", float(lost + len(short)), "<=", 0),
        check("relay updates reordered", float(reordered), "<=", 0),
    ]
    return outcome
