"""A/B of a daphne's CPU per frame fanned out to idle clients, between source trees, in one run.

``python -m bench.fanout_ab --subject main=/tmp/main-tree --subject new=. --clients 5000 --rounds 3``
starts SecantusDB, Redis, the scripted exchange and the real ingest once; then,
for each round and each subject in rotated order, a fresh daphne from that tree
(``git archive <commit> | tar -x -C /tmp/main-tree`` makes one) with Redis,
200 warm-up connections, ``--clients`` idle clients in two load-client
processes (``bench/scaleclient.py``, as the scale scenario), its idle CPU rate
over 3 s, and ``--closes`` closes of BTCUSDT. Per close: the daphne's CPU above
its idle rate, per frame sent (one per client), and stored -> client p50/p99.
It prints each measurement and the median per subject; the subjects share the
machine's noise, so compare them, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pymongo

from bench import load
from bench.memory_ab import source_trees
from bench.options import RESULTS
from bench.report import latency_summary
from bench.scenarios import SYMBOLS
from bench.scenarios.scale import CLIENT_PROCESSES, COIN, IDLE_CPU_SECONDS, WAIT_SECONDS, ClientProcess
from bench.stack import Stack, cpu_seconds, exchange_call, wait_for_streams

DATABASE = "bench_fanout_ab"


async def _stored(collection, open_time: datetime) -> dict:
    for _ in range(100):
        stored = await asyncio.to_thread(
            collection.find_one, {"symbol": COIN, "interval": "1m", "open_time": open_time}
        )
        if stored is not None:
            return stored
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the ingest did not store {COIN} {open_time}")


async def measure(stack: Stack, env: dict, root: Path, clients: int, closes: int, exchange_port: int, collection):
    """Per close on a fresh daphne from ``root``: (µs of CPU per frame above idle, p50 ms, p99 ms, missing,
    p99 ms as the load clients read the frames, the load clients' CPU ms)."""
    process, port = stack.daphne("fanout-ab-daphne", env, root=root)
    loaders: list[ClientProcess] = []
    try:
        await load.storm(port, connections=200, concurrency=20)
        counts = [clients // CLIENT_PROCESSES + (i < clients % CLIENT_PROCESSES) for i in range(CLIENT_PROCESSES)]
        for i, n in enumerate(counts):
            loaders.append(await ClientProcess.start(stack, f"fanout-ab-clients-{i}", [port], n, 100))
        opened = sum(o["opened"] for o in await asyncio.gather(*(c.answer(time_limit=600) for c in loaders)))
        await asyncio.sleep(2.0)
        before, began = cpu_seconds(process), time.monotonic()
        await asyncio.sleep(IDLE_CPU_SECONDS)
        idle_rate = (cpu_seconds(process) - before) / (time.monotonic() - began)
        results = []
        for _ in range(closes + 1):  # the first close after start-up pays one-off costs: not counted
            await asyncio.gather(*(c.ask("arm") for c in loaders))
            before, began = cpu_seconds(process), time.monotonic()
            clients_before = sum(c.cpu() for c in loaders)
            sent = await asyncio.to_thread(exchange_call, exchange_port, f"/bench/close?symbols={COIN}")
            stored = await _stored(collection, datetime.fromtimestamp(sent["open_ms"][COIN] / 1000, tz=UTC))
            close = float(Decimal(str(stored["close"])))
            answers = await asyncio.gather(*(c.ask(f"wait {close!r} {WAIT_SECONDS}", time_limit=120) for c in loaders))
            cpu = cpu_seconds(process) - before - idle_rate * (time.monotonic() - began)
            clients_cpu = sum(c.cpu() for c in loaders) - clients_before
            stored_at = stored["stored_at"].timestamp()
            got = [t - stored_at for a in answers for _, t in a["arrivals"]]
            summary = latency_summary(got)
            missing = sum(a["missing"] for a in answers)
            read = latency_summary([t - stored_at for a in answers for _, t in a.get("reads", a["arrivals"])])
            per_frame = cpu / max(opened, 1) * 1e6
            p50, p99 = summary["p50_ms"], summary["p99_ms"]
            results.append((per_frame, p50, p99, missing, read["p99_ms"], clients_cpu * 1e3))
            await asyncio.sleep(1.0)
        return results[1:]
    finally:
        await asyncio.gather(*(c.stop() for c in loaders))
        stack.stop(process)


async def run(subjects: dict[str, Path], clients: int, rounds: int, closes: int) -> None:
    with Stack(RESULTS / "work-fanout-ab") as stack:
        stack.start_mongo()
        env = stack.env(DATABASE)
        stack.prepare_database(env, symbols=SYMBOLS, count=30)
        env["REDIS_URL"] = stack.start_redis()
        _, exchange_port = stack.exchange("fanout-ab-exchange", SYMBOLS, env)
        ingest_env = {**env, "BINANCE_WS_URL": f"ws://127.0.0.1:{exchange_port}/market"}
        ingest_env["BINANCE_REST_URL"] = f"http://127.0.0.1:{exchange_port}"
        stack.ingest("fanout-ab-ingest", ingest_env, SYMBOLS)
        await asyncio.to_thread(wait_for_streams, exchange_port, 1)
        mongo = pymongo.MongoClient(env["MONGO_URI"], tz_aware=True)
        collection = mongo[DATABASE][env.get("MONGO_COLLECTION", "klines")]
        per_frame: dict[str, list[float]] = {name: [] for name in subjects}
        p99s: dict[str, list[float]] = {name: [] for name in subjects}
        names = list(subjects)
        try:
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    load_before = os.getloadavg()[0]
                    for us, p50, p99, missing, read_p99, clients_ms in await measure(
                        stack, env, subjects[name], clients, closes, exchange_port, collection
                    ):
                        per_frame[name].append(us)
                        p99s[name].append(p99)
                        print(
                            f"round {r} {name}: {us:.1f} us/frame above idle, p50 {p50:.0f} / p99 {p99:.0f} ms "
                            f"(read by the clients: p99 {read_p99:.0f} ms, their CPU {clients_ms:.0f} ms), "
                            f"{missing} missing, load {load_before:.2f}-{os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
        finally:
            mongo.close()
        for name in names:
            print(
                f"{name}: median {statistics.median(per_frame[name]):.1f} us/frame of "
                f"{[round(v, 1) for v in per_frame[name]]}; median p99 {statistics.median(p99s[name]):.0f} ms"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--subject", action="append", required=True, help="name=path of a source tree")
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--closes", type=int, default=3, help="closes measured per daphne (after one not counted)")
    args = parser.parse_args(argv)
    subjects = source_trees(parser, args.subject)
    load.raise_open_files_limit(args.clients + 1000)
    asyncio.run(run(subjects, args.clients, args.rounds, args.closes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
