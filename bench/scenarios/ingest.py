"""Scenario: the ingest's CPU per stream message, and its cold start.

*CPU per 1,000 messages*: the real ``ingest_klines`` (no Redis) and :data:`BARE_READER`
(websocket-client and ``json.loads`` only) read the same 500 scripted streams; each
process's CPU over the window per frame sent to it.
*Cold start*: an empty database, ``--clock-closes``, Binance's default REST budget;
from spawning the process to the poll that sees every symbol's 11 newest closed
klines; the exchange's log of REST requests gives the weight spent in any 60 s.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pymongo

from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from bench.scenarios.burst import UNPACED_REST_WEIGHT, burst_symbols, wait_until_settled
from bench.stack import Stack, cpu_seconds, exchange_call, wait_for_streams
from klines.binance.parse import combined_stream_url
from klines.ingest.stream import split_streams
from klines.simexchange.weight import WeightCounter
from klines.testing.servers import exchange_urls

CPU_DATABASE = "bench_ingest_cpu"
COLD_DATABASE = "bench_ingest_cold"
HISTORY = 11  # what a cold start must store per symbol (the payload's 10 and the one before)
MINUTE_MS = 60_000
WARMUP_SECONDS = 3.0
POLL_SECONDS = 0.25
COLD_TIMEOUT = 180.0
BUDGET = 1200  # BINANCE_REST_WEIGHT_PER_MINUTE's default
BINANCE_LIMIT = 2400  # Binance's weight per minute per IP (USD-M futures)
# The CPU baseline, ``python -c BARE_READER URL``: connected with the ingest's options (``skip_utf8_validation``:
# the ingest decodes frames with ``bytes.decode()``), so the ratio is what the ingest adds to receiving and decoding.
BARE_READER = """
import json, signal, sys, websocket
signal.signal(signal.SIGTERM, signal.default_int_handler)
ws = websocket.create_connection(sys.argv[1], skip_utf8_validation=True)
try:
    while True:
        json.loads(ws.recv())
except (websocket.WebSocketException, OSError, KeyboardInterrupt):
    pass
"""


async def run(stack: Stack, options: Options, progress) -> Outcome:
    symbols = burst_symbols(options.ingest_symbols)
    cpu = await _cpu_per_message(stack, options, symbols)
    stack.stop_all_but_infrastructure()
    progress(f"ingest: cold start of {len(symbols)} symbols on an empty database")
    cold = await _cold_start(stack, symbols)
    outcome = Outcome("ingest", {"symbols": len(symbols), "cpu": cpu, "cold_start": cold})
    title = f"ingest CPU ({len(symbols)} streams, 4 updates/s each, {cpu['window_s']:.0f} s)"
    figures = f"{fmt(cpu['ingest_ms_per_1000'], 1)} / {fmt(cpu['bare_ms_per_1000'], 1)} ms CPU per 1,000 messages"
    notes = f"{cpu['messages_per_s']:,.0f} messages/s each; no Redis (nothing relayed)"
    subject = "ingest_klines / bare websocket-client + json.loads"
    outcome.rows.append((title, subject, f"{figures} = {fmt(cpu['ratio'], 2)}x", notes))
    title = f"ingest cold start ({len(symbols)} symbols, empty database, REST budget {BUDGET}/min)"
    figures = f"{fmt(cold['seen_s'], 1)} s seen (newest stored_at {fmt(cold['newest_stored_at_s'], 1)} s)"
    notes = f"REST: {cold['requests']} requests, weight {cold['weight']} (max {cold['max_weight_60s']} in any 60 s); "
    outcome.rows.append(
        (title, f"start -> every symbol has its {HISTORY} newest", figures, f"{notes}{cold['stored']} klines stored")
    )
    weight = float(cold["max_weight_60s"])
    outcome.targets = [check(f"cold start REST weight in any 60 s (budget {BUDGET})", weight, "<=", BINANCE_LIMIT)]
    return outcome


async def _cpu_per_message(stack: Stack, options: Options, symbols: list[str]) -> dict:
    env = stack.env(CPU_DATABASE)
    stack.prepare_database(env)
    _, port = stack.exchange("ingest-cpu-exchange", symbols, env)
    ingest_env = {**env, **exchange_urls(port), "BINANCE_REST_WEIGHT_PER_MINUTE": UNPACED_REST_WEIGHT}
    ingest = stack.ingest("ingest-cpu", ingest_env, symbols)
    # The ingest splits its streams into connections whose URLs Binance accepts (klines/ingest/stream.py).
    ingest_connections = len(split_streams([(s, "1m") for s in symbols], 1024))
    await asyncio.to_thread(wait_for_streams, port, ingest_connections)
    await asyncio.to_thread(wait_until_settled, stack.klines(CPU_DATABASE))
    url = combined_stream_url(f"ws://127.0.0.1:{port}/market", [(s, "1m") for s in symbols])
    bare = stack.background("ingest-bare-reader", ["-c", BARE_READER, url])
    await asyncio.to_thread(wait_for_streams, port, ingest_connections + 1)
    await asyncio.sleep(WARMUP_SECONDS)
    before = (cpu_seconds(ingest), cpu_seconds(bare), exchange_call(port, "/bench/status"))
    began = time.monotonic()
    await asyncio.sleep(options.ingest_seconds)
    after = (cpu_seconds(ingest), cpu_seconds(bare), exchange_call(port, "/bench/status"))
    window = time.monotonic() - began
    if len(after[2]["sent"]) != ingest_connections + 1 or after[2]["sent_by_closed_connections"]:
        raise RuntimeError(f"a reader reconnected during the window: {after[2]}")
    # Connections in the order they came: the ingest's first, the bare reader's last.
    sent = [a - b for a, b in zip(after[2]["sent"], before[2]["sent"], strict=True)]
    ingest_messages, bare_messages = sum(sent[:-1]), sent[-1]
    ingest_ms = (after[0] - before[0]) * 1000 / (ingest_messages / 1000)
    bare_ms = (after[1] - before[1]) * 1000 / (bare_messages / 1000)
    out = {"window_s": window, "ingest_messages": ingest_messages, "bare_messages": bare_messages}
    out |= {"messages_per_s": ingest_messages / window, "ingest_cpu_s": after[0] - before[0]}
    out |= {"bare_cpu_s": after[1] - before[1], "ingest_ms_per_1000": ingest_ms, "bare_ms_per_1000": bare_ms}
    return out | {"ratio": ingest_ms / bare_ms}


def _most_in_a_minute(requests: list[tuple[float, str, int]]) -> int:
    """The most weight spent within any 60 s, counted as the simulator counts it."""
    now = 0.0
    counter = WeightCounter(None, clock=lambda: now)
    for now, _, weight in sorted(requests):  # noqa: B007 - the clock reads it
        counter.spend(weight)
    return counter.most


async def _cold_start(stack: Stack, symbols: list[str]) -> dict:
    env = stack.env(COLD_DATABASE)
    stack.prepare_database(env)
    _, port = stack.exchange("ingest-cold-exchange", symbols, env, mode=("--clock-closes",))
    ingest_env = {**env, **exchange_urls(port)}  # BINANCE_REST_WEIGHT_PER_MINUTE: the default
    started = time.time()
    stack.ingest("ingest-cold", ingest_env, symbols)
    seen, newest, stored = await asyncio.to_thread(_wait_for_history, stack.klines(COLD_DATABASE), symbols, started)
    requests = exchange_call(port, "/bench/rest")["requests"]
    upto = [(at, weight) for at, _, weight in requests if at <= started + seen]
    out = {"seen_s": seen, "newest_stored_at_s": newest, "stored": stored, "requests": len(upto)}
    return out | {"weight": sum(w for _, w in upto), "max_weight_60s": _most_in_a_minute(requests)}


def _wait_for_history(collection: pymongo.collection.Collection, symbols: list[str], started: float):
    """Poll until every symbol has its :data:`HISTORY` newest closed klines; (seen s, newest stored_at s, stored)."""
    wanted = {s.upper() for s in symbols}
    since = {"stored_at": {"$gte": datetime.fromtimestamp(started - 1, tz=UTC)}}
    deadline = time.monotonic() + COLD_TIMEOUT
    while time.monotonic() < deadline:
        poll = time.time()
        if collection.count_documents(since) >= len(wanted) * HISTORY:
            newest_open = int(poll * 1000) // MINUTE_MS * MINUTE_MS - MINUTE_MS  # the newest closed by now
            first = datetime.fromtimestamp((newest_open - (HISTORY - 1) * MINUTE_MS) / 1000, tz=UTC)
            rows = list(collection.find(since, {"symbol": 1, "open_time": 1, "stored_at": 1}))
            have = [r for r in rows if r["open_time"] >= first and r["symbol"] in wanted]
            if len({(r["symbol"], r["open_time"]) for r in have}) >= len(wanted) * HISTORY:
                newest = max(r["stored_at"] for r in have).timestamp() - started
                return poll - started, newest, len(rows)
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"the cold start did not store {HISTORY} klines of every symbol in {COLD_TIMEOUT:.0f} s")
