"""A/B in one process: a random new ``/fapi/v1/klines`` page read kline by kline, or cut from encoded blocks.

``python -m bench.history_blocks [--klines 200000] [--pages 200]``: a SecantusDB
of its own, migrated and seeded by :mod:`bench.bulkseed` (20 symbols of
one-minute klines); the blocks are built first by the mirror's own sweep
(timed: the catch-up a record stored before blocks needs), then random full
pages are read both ways, alternating page by page: (a) as the mirror read
them before blocks (``klines_page``, rows, JSON: the code
:func:`klines.api.pages.read_page` falls back to), (b) ``read_page`` itself.
CPU per page is this thread's (pymongo decodes on it) and SecantusDB's
process. The bodies of every page are compared. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from klines.testing.servers import SecantusServer, manage, service_env

DATABASE = "bench_blocks"
SYMBOLS = [f"S{i:02d}USDT" for i in range(20)]
PAGE = 1500
MINUTE_MS = 60_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--klines", type=int, default=200_000)
    parser.add_argument("--pages", type=int, default=200, help="pages per subject")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-blocks-") as workdir:
        server = SecantusServer(Path(workdir) / "data").start()
        try:
            print(json.dumps(run(server, args.klines, args.pages)))
        finally:
            server.stop()


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
    result = {"klines": seeded.klines, "page": PAGE, "pages": pages, "bodies_differ": differ, "sweep": sweep}
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
