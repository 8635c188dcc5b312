"""A/B: random new ``/fapi/v1/klines`` pages read kline by kline, or cut from encoded blocks.

``python -m bench.history_blocks [--klines 200000] [--pages 100] [--seconds 20] [--rounds 2]``:
a SecantusDB of its own, migrated and seeded by :mod:`bench.bulkseed` (20
symbols of one-minute klines). The blocks are built first by the mirror's own
sweep (timed: the catch-up a record stored before blocks needs). Then (1) in
this process, random full pages read both ways, alternating page by page:
(a) as the mirror read them before blocks (``klines_page``, rows, JSON), (b)
``read_page``; CPU per page is this thread's (pymongo decodes on it) and
SecantusDB's, and the bodies are compared. (2) Two daphne processes on that
database, ``KLINE_BLOCKS=true`` and ``false``, each loaded in turn (order
rotated each round) by concurrent clients asking random new full pages
(:func:`bench.scenarios.history.load`), after ten pages one at a time.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from klines.testing.servers import SecantusServer, daphne, free_port, manage, service_env, stop_process

DATABASE = "bench_blocks"
SYMBOLS = [f"S{i:02d}USDT" for i in range(20)]
PAGE = 1500
MINUTE_MS = 60_000
SUBJECTS = ["klines", "blocks"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--klines", type=int, default=200_000)
    parser.add_argument("--pages", type=int, default=100, help="pages per subject, in this process")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="load per server and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-blocks-") as workdir:
        server = SecantusServer(Path(workdir) / "data").start()
        try:
            result = run(server, args.klines, args.pages)
            result["served"] = asyncio.run(served(server, Path(workdir), result, args))
            print(json.dumps(result))
        finally:
            server.stop()


async def served(server: SecantusServer, workdir: Path, seeded: dict, args: argparse.Namespace) -> dict:
    """Both daphnes under ``args.clients`` clients of random new pages, rounds interleaved."""
    from bench.history_pages import Pages
    from bench.report import latency_summary
    from bench.scenarios.history import load, one_at_a_time

    processes = {}
    for name in SUBJECTS:
        port = free_port()
        env = service_env(server.uri, DATABASE, KLINE_SYMBOLS=",".join(SYMBOLS), KLINE_INTERVAL="1m")
        env["KLINE_BLOCKS"] = str(name == "blocks").lower()
        processes[name] = (daphne(port, env, workdir / f"daphne-{name}.log"), port)
    figures: dict[str, dict] = {
        name: {"alone": [], "latencies": [], "wall": 0.0, "daphne": 0.0, "db": 0.0} for name in SUBJECTS
    }
    seed = 100
    try:
        for round_no in range(args.rounds):
            order = SUBJECTS[round_no % 2 :] + SUBJECTS[: round_no % 2]
            for name in order:
                process, port = processes[name]
                seed += 1
                pages = Pages(SYMBOLS, seeded["first_open_ms"], seeded["minutes"], seed=seed)
                figures[name]["alone"] += await one_at_a_time(port, pages, 10)
                done = await load(
                    port,
                    pages,
                    clients=args.clients,
                    seconds=args.seconds,
                    grace=60.0,
                    daphne=process,
                    mongo=server.process,
                )
                f = figures[name]
                f["latencies"] += done.latencies + done.unfinished
                f["pages"] = f.get("pages", 0) + len(done.latencies)
                f["wall"] += done.wall
                f["daphne"] += done.server_cpu
                f["db"] += done.mongo_cpu
                f.setdefault("load_average", []).append(os.getloadavg()[0])
    finally:
        for process, _ in processes.values():
            stop_process(process)
    out = {}
    for name, f in figures.items():
        pages_done = max(f["pages"], 1)
        out[name] = {
            "alone": latency_summary(f["alone"]),
            **latency_summary(f["latencies"]),
            "pages_per_s": f["pages"] / f["wall"],
            "daphne_cpu_ms_per_page": f["daphne"] / pages_done * 1000,
            "secantus_cpu_ms_per_page": f["db"] / pages_done * 1000,
            "load_average": f["load_average"],
        }
        o = out[name]
        print(
            f"{name:7} {args.clients} clients: alone p50 {o['alone']['p50_ms']:.0f} ms; p50 {o['p50_ms']:.0f} / p99"
            f" {o['p99_ms']:.0f} ms, {o['pages_per_s']:.1f} pages/s; CPU per page daphne"
            f" {o['daphne_cpu_ms_per_page']:.1f}, SecantusDB {o['secantus_cpu_ms_per_page']:.1f} ms;"
            f" load average {o['load_average']}"
        )
    return out


def run(server: SecantusServer, klines: int, pages: int) -> dict:
    env = service_env(server.uri, DATABASE, KLINE_SYMBOLS=",".join(SYMBOLS), KLINE_INTERVAL="1m")
    assert manage(["migrate", "--noinput", "-v0"], env).wait(300) == 0
    from bench import bulkseed

    minutes = klines // len(SYMBOLS)
    seeded = bulkseed.seed(
        server.uri, DATABASE, "klines", symbols=SYMBOLS, interval="1m", minutes=minutes, now=datetime.now(UTC)
    )
    os.environ.update(env)
    import django

    django.setup()
    import psutil

    from klines.api import block_sweep
    from klines.api import pages as mirror
    from klines.api.page_cache import closed, encode
    from klines.api.rows import kline_row
    from klines.binance.parse import datetime_to_ms, ms_to_datetime
    from klines.store.reads import klines_page

    def before(key: tuple) -> bytes:
        """The read as it was before blocks."""
        symbol, interval, start_ms, end_ms, limit = key
        records = klines_page(symbol, interval, start=ms_to_datetime(start_ms), end=ms_to_datetime(end_ms), limit=limit)
        body = encode(kline_row(k) for k in records)
        closed([datetime_to_ms(k.open_time) for k in records], MINUTE_MS, start_ms=start_ms, end_ms=end_ms, limit=limit)
        return body

    def blocks(key: tuple) -> bytes:
        return mirror.read_page(key).body

    mongo = psutil.Process(server.process.pid)

    def cpu() -> tuple[float, float]:
        times = mongo.cpu_times()
        return time.thread_time(), times.user + times.system

    began, cpu0 = time.monotonic(), cpu()
    built = block_sweep.sweep(lambda: None)
    cpu1 = cpu()
    sweep = {
        "blocks": built,
        "seconds": time.monotonic() - began,
        "cpu_s": cpu1[0] - cpu0[0],
        "secantus_cpu_s": cpu1[1] - cpu0[1],
    }
    rng = random.Random(7)
    now_ms = datetime_to_ms(datetime.now(UTC))
    subjects = {"klines": before, "blocks": blocks}
    samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in subjects}
    differ = 0
    for n in range(pages):
        start = seeded.first_open_ms + rng.randrange(minutes - PAGE) * MINUTE_MS
        key = (rng.choice(SYMBOLS), "1m", start, now_ms, PAGE)
        bodies = []
        for name in list(subjects)[n % 2 :] + list(subjects)[: n % 2]:
            wall, (own, db) = time.perf_counter(), cpu()
            bodies.append(subjects[name](key))
            after = cpu()
            samples[name].append((time.perf_counter() - wall, after[0] - own, after[1] - db))
        differ += bodies[0] != bodies[1]
    result = {
        "klines": seeded.klines,
        "first_open_ms": seeded.first_open_ms,
        "minutes": minutes,
        "page": PAGE,
        "pages": pages,
        "bodies_differ": differ,
        "sweep": sweep,
    }
    print(
        f"{seeded.klines:,} klines; sweep: {built} blocks in {sweep['seconds']:.1f} s (own CPU {sweep['cpu_s']:.1f} s,"
        f" SecantusDB {sweep['secantus_cpu_s']:.1f} s); bodies differ: {differ}"
    )
    for name, rows in samples.items():
        median = {k: statistics.median(r[i] for r in rows) * 1000 for i, k in enumerate(("wall_ms", "cpu_ms", "db_ms"))}
        result[name] = median
        print(
            f"{name:7} page of {PAGE}: median wall {median['wall_ms']:.1f} ms, own CPU {median['cpu_ms']:.1f} ms,"
            f" SecantusDB CPU {median['db_ms']:.1f} ms"
        )
    result["load_average"] = os.getloadavg()
    return result


if __name__ == "__main__":
    main()
