"""``python -m bench``: run the benchmark suite, print a table, write JSON.

Everything runs on 127.0.0.1 and is started here: SecantusDB, redis-server,
daphne, uvicorn, the baseline servers, the scripted exchange and the ingest.
See bench/README.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from datetime import UTC, datetime

from bench.load import raise_open_files_limit
from bench.options import Options, parse_args
from bench.report import machine, table, targets_table, write_json
from bench.scenarios import (
    SYMBOLS,
    Outcome,
    bigrecord,
    burst,
    churn,
    fanout,
    history,
    history_import,
    ingest,
    memory,
    pages,
    parse,
    reads,
    relay,
    scale,
    storm,
    timing,
)
from bench.scenarios import pythons as pythons_scenario
from bench.stack import Stack


async def run_all(options: Options, stack: Stack, progress) -> list[Outcome]:
    wanted = set(options.scenarios)
    outcomes: list[Outcome] = []
    if wanted - {"pythons"}:  # the pythons scenario's child runs start their own
        stack.start_mongo()
        stack.prepare_database(stack.env(storm.DATABASE), symbols=SYMBOLS, count=30)
    redis_url = stack.start_redis() if wanted & {"fanout", "burst", "relay", "soak", "scale"} else ""
    if "parse" in wanted:
        progress("parser rate")
        outcomes.append(parse.run(options))
    if "timing" in wanted:
        progress(f"fan-out timing cost: {options.idle} connections in one process")
        outcomes.append(await timing.run(options))
    if "storm" in wanted:
        progress(f"connect storm: {options.connections} clients x 4 servers x {options.rounds} rounds")
        outcomes.append(await storm.run(stack, options))
        stack.stop_all_but_infrastructure()
    if "fanout" in wanted:
        progress(f"fan-out: {options.idle} idle clients on {options.daphnes} daphne + Redis")
        outcomes.append(await fanout.run(stack, options, redis_url))
        stack.stop_all_but_infrastructure()
    if "scale" in wanted:
        progress(f"many clients: {options.scale_clients:,} idle clients on {options.daphnes} daphne + Redis")
        outcomes.append(await scale.run(stack, options, redis_url))
        stack.stop_all_but_infrastructure()
    if "burst" in wanted:
        progress(f"ingest burst: {options.burst_symbols} symbols x {options.burst_rounds} bursts")
        outcomes.append(await burst.run(stack, options, redis_url))
        stack.stop_all_but_infrastructure()
    if "memory" in wanted:
        progress(f"memory: {options.idle} idle clients")
        outcomes.append(await memory.run(stack, options))
        stack.stop_all_but_infrastructure()
    if "soak" in wanted:
        progress(
            f"churn soak: {options.soak_seconds:.0f} s after {options.soak_warmup:.0f} s warm-up, "
            f"{options.daphnes} daphne + Redis, closes every {options.soak_close_seconds:g} s"
        )
        outcomes.append(await churn.run(stack, options, redis_url))
        stack.stop_all_but_infrastructure()
    if "pages" in wanted:
        progress("pages: chart (1,500 bars) and overview drawn in headless Chromium, 5 runs each")
        outcomes.append(await pages.run(stack, options))
        stack.stop_all_but_infrastructure()
    if "relay" in wanted:
        progress(
            f"relay: {options.relay_symbols} streams x 4 updates/s to {options.relay_clients} clients "
            f"x {options.relay_streams_per_client} streams, {options.daphnes} daphne + Redis"
        )
        outcomes.append(await relay.run(stack, options, redis_url))
        stack.stop_all_but_infrastructure()
    if "ingest" in wanted:
        progress(f"ingest: CPU per 1,000 messages and cold start, {options.ingest_symbols} symbols")
        outcomes.append(await ingest.run(stack, options, progress))
        stack.stop_all_but_infrastructure()
    if "reads" in wanted:
        progress("reads: a history page and a reconcile poll, Kline model vs KlineRecord, interleaved")
        outcomes.append(await reads.run(stack, options, progress))
    if "pythons" in wanted:
        progress(f"pythons: storm and fan-out under Python 3.11-3.13, {options.pythons_rounds} round(s)")
        outcomes.append(await pythons_scenario.run(options, stack.logs, progress))
    if "import" in wanted:
        progress(f"import: BTCUSDT x {options.import_months} month(s) of 1m archive files, and a bare insert_many")
        outcomes.append(history_import.run(stack, options, progress))
        stack.stop_all_but_infrastructure()
    if "history" in wanted:
        progress(f"history: {options.history_klines:,} klines, {options.history_clients} clients")
        outcomes.append(await history.run(stack, options, progress))
        stack.stop_all_but_infrastructure()
    if "bigrecord" in wanted:
        progress(f"bigrecord: {options.bigrecord_klines:,} klines, the admin's list and the storage per kline")
        outcomes.append(await bigrecord.run(stack, options, progress))
        stack.stop_all_but_infrastructure()
    return outcomes


def render(outcomes: list[Outcome], *, quick: bool) -> str:
    lines = [
        targets_table([t for o in outcomes for t in o.targets], quick=quick),
        "",
        table([row for o in outcomes for row in o.rows], ("scenario", "subject", "figures", "notes")),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    nofile = raise_open_files_limit(max(4096, options.idle * 2 + 1000, options.scale_clients + 1000))
    began = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {message}", file=sys.stderr, flush=True)

    shutil.rmtree(options.workdir, ignore_errors=True)
    with Stack(options.workdir) as stack:
        outcomes = asyncio.run(run_all(options, stack, progress))
    duration = time.monotonic() - began
    results = {
        "started_at": started_at,
        "duration_s": duration,
        "quick": options.quick,
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "open_files_limit": nofile,
        "targets": [t.as_dict() for o in outcomes for t in o.targets],
        "scenarios": {o.name: o.data for o in outcomes},
    }
    write_json(options.output, results)
    info = results["machine"]
    print(
        f"\nbinancews benchmarks, {started_at}, {duration:.0f} s: {info['nproc']} x {info['cpu_model']}, "
        f"{info['ram_gib']} GiB RAM, load average {load_before[0]:.2f} before / {os.getloadavg()[0]:.2f} after\n"
    )
    print(render(outcomes, quick=options.quick))
    print(f"\nJSON: {options.output}")
    shutil.rmtree(options.workdir / "secantus-data", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
