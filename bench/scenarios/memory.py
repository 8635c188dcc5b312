"""Scenario 4, memory: one daphne's RSS with 0 and M idle connections, then a connect/disconnect soak."""

from __future__ import annotations

import asyncio
import time

from bench import load
from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from bench.scenarios.storm import DATABASE
from bench.stack import Stack, rss

SETTLE_SECONDS = 2.0
SAMPLE_SECONDS = 5.0
MIB = 2**20


async def run(stack: Stack, options: Options, *, idle: bool, soak: bool) -> list[Outcome]:
    """A fresh daphne without Redis (the single-process default) on the connect storm's data."""
    env = stack.env(DATABASE)
    process, port = stack.daphne("memory-daphne", env)
    started = rss(process)
    await load.storm(port, connections=200, concurrency=20)  # load the feed, warm the code paths
    await asyncio.sleep(SETTLE_SECONDS)
    outcomes = []
    if idle:
        outcomes.append(await _idle(process, port, options, started))
    if soak:
        outcomes.append(await _soak(process, port, options))
    return outcomes


async def _idle(process, port: int, options: Options, started: int) -> Outcome:
    zero = rss(process)
    clients = await load.open_idle([port], count=options.idle, concurrency=options.concurrency)
    await asyncio.sleep(SETTLE_SECONDS)
    held = rss(process)
    opened = len(clients.connections)
    await clients.close()
    await asyncio.sleep(SETTLE_SECONDS)
    after = rss(process)
    per_connection = (held - zero) / opened if opened else float("nan")
    outcome = Outcome(
        "memory",
        {
            "rss_started_mib": started / MIB,
            "rss_0_mib": zero / MIB,
            "idle_clients": opened,
            "errors": clients.errors,
            "rss_idle_mib": held / MIB,
            "rss_after_close_mib": after / MIB,
            "per_connection_kib": per_connection / 1024,
        },
    )
    outcome.rows.append(
        (
            "memory (one daphne, no Redis)",
            f"RSS with 0 / {opened} idle clients",
            f"{fmt(zero / MIB)} / {fmt(held / MIB)} MiB = {fmt(per_connection / 1024)} KiB per connection",
            f"{fmt(after / MIB)} MiB after they closed",
        )
    )
    outcome.targets = [check("memory per idle connection, one daphne (KiB)", per_connection / 1024, "<=", 20)]
    return outcome


async def _soak(process, port: int, options: Options) -> Outcome:
    result = load.ChurnResult()
    await load.churn(port, seconds=options.soak_warmup, concurrency=options.soak_concurrency, result=result)
    await asyncio.sleep(SETTLE_SECONDS)
    baseline = rss(process)
    warm_count = result.completed
    samples = [(0.0, baseline)]
    began = time.monotonic()
    churning = asyncio.create_task(
        load.churn(port, seconds=options.soak_seconds, concurrency=options.soak_concurrency, result=result)
    )
    while not churning.done():
        await asyncio.wait([churning], timeout=SAMPLE_SECONDS)
        samples.append((time.monotonic() - began, rss(process)))
    await churning
    soaked = result.completed - warm_count
    elapsed = time.monotonic() - began
    await asyncio.sleep(SETTLE_SECONDS)
    final = rss(process)
    growth = (final - baseline) / baseline * 100
    outcome = Outcome(
        "soak",
        {
            "seconds": options.soak_seconds,
            "warmup_seconds": options.soak_warmup,
            "in_flight": options.soak_concurrency,
            "connections": soaked,
            "connections_per_s": soaked / elapsed,
            "errors": result.errors,
            "first_error": result.first_error,
            "rss_baseline_mib": baseline / MIB,
            "rss_final_mib": final / MIB,
            "rss_peak_mib": max(s for _, s in samples) / MIB,
            "growth_percent": growth,
            "samples_mib": [(round(t, 1), round(s / MIB, 2)) for t, s in samples],
        },
    )
    outcome.rows.append(
        (
            f"soak ({options.soak_seconds:.0f} s after {options.soak_warmup:.0f} s warm-up)",
            f"{soaked:,} connects/disconnects",
            f"RSS {fmt(baseline / MIB)} -> {fmt(final / MIB)} MiB ({growth:+.1f}%)",
            f"{result.errors} errors, {fmt(soaked / elapsed, 0)} conn/s",
        )
    )
    outcome.targets = [check("soak RSS growth (%)", growth, "<", 5)]
    return outcome
