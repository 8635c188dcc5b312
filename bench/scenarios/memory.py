"""Scenario 4, memory: one daphne's RSS with 0 and M idle connections (the soak is :mod:`bench.scenarios.churn`)."""

from __future__ import annotations

import asyncio

from bench import load
from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from bench.scenarios.storm import DATABASE
from bench.stack import Stack, rss

SETTLE_SECONDS = 2.0
MIB = 2**20


async def run(stack: Stack, options: Options) -> Outcome:
    """A fresh daphne without Redis (the single-process default) on the connect storm's data."""
    env = stack.env(DATABASE)
    process, port = stack.daphne("memory-daphne", env)
    started = rss(process)
    await load.storm(port, connections=200, concurrency=20)  # load the feed, warm the code paths
    await asyncio.sleep(SETTLE_SECONDS)
    return await _idle(process, port, options, started)


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
