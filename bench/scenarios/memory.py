"""Scenario 4, memory: one daphne's RSS with 0 and M idle connections (the soak is :mod:`bench.scenarios.churn`)."""

from __future__ import annotations

import asyncio
import subprocess

from bench import load
from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from bench.scenarios.storm import DATABASE
from bench.stack import Stack, rss

SETTLE_SECONDS = 2.0
MIB = 2**20


async def idle_rss(process: subprocess.Popen, port: int, count: int) -> tuple[int, int, load.IdleClients]:
    """A warmed-up daphne's RSS before and with ``count`` idle clients on ``/``, and the clients (still open)."""
    await load.storm(port, connections=200, concurrency=20)  # load the feed, warm the code paths
    await asyncio.sleep(SETTLE_SECONDS)
    zero = rss(process)
    clients = await load.open_idle([port], count=count, concurrency=100)
    await asyncio.sleep(SETTLE_SECONDS)
    return zero, rss(process), clients


async def run(stack: Stack, options: Options) -> Outcome:
    """A fresh daphne without Redis (the single-process default) on the connect storm's data."""
    process, port = stack.daphne("memory-daphne", stack.env(DATABASE))
    started = rss(process)
    zero, held, clients = await idle_rss(process, port, options.idle)
    opened = len(clients.connections)
    await clients.close()
    await asyncio.sleep(SETTLE_SECONDS)
    after = rss(process)
    per_connection = (held - zero) / opened if opened else float("nan")
    data = {"rss_started_mib": started / MIB, "rss_0_mib": zero / MIB, "idle_clients": opened}
    data |= {"errors": clients.errors, "rss_idle_mib": held / MIB, "rss_after_close_mib": after / MIB}
    outcome = Outcome("memory", data | {"per_connection_kib": per_connection / 1024})
    figures = f"{fmt(zero / MIB)} / {fmt(held / MIB)} MiB = {fmt(per_connection / 1024)} KiB per connection"
    subject, notes = f"RSS with 0 / {opened} idle clients", f"{fmt(after / MIB)} MiB after they closed"
    outcome.rows.append(("memory (one daphne, no Redis)", subject, figures, notes))
    outcome.targets = [check("memory per idle connection, one daphne (KiB)", per_connection / 1024, "<=", 20)]
    return outcome
