"""``python -m bench``: run the benchmark suite, print a table, write JSON.

Everything runs on 127.0.0.1 and is started here: SecantusDB, redis-server,
daphne, uvicorn, the baseline servers, the scripted exchange and the ingest.
See bench/README.md.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime

from bench.load import raise_open_files_limit
from bench.options import Options, parse_args
from bench.report import machine, table, targets_table, write_json
from bench.scenarios import (
    SYMBOLS,
    Outcome,
    archive,
    bigrecord,
    burst,
    churn,
    export,
    history,
    history_import,
    ingest,
    memory,
    pages,
    parse,
    pythons,
    reads,
    relay,
    replay,
    scale,
    storm,
    timing,
)
from bench.stack import Stack


def steps(o: Options, stack: Stack, redis_url: str, progress: Callable[[str], None]) -> dict[str, Callable]:
    """Scenario -> its call, in the order they run (history, whose ORM leaves SecantusDB busy, last but one)."""
    return {
        "parse": lambda: parse.run(o),
        "timing": lambda: timing.run(o),
        "storm": lambda: storm.run(stack, o),
        "fanout": lambda: scale.run(stack, o, redis_url, name="fanout", total=o.idle, goal_ms=100),
        "scale": lambda: scale.run(stack, o, redis_url),
        "burst": lambda: burst.run(stack, o, redis_url),
        "memory": lambda: memory.run(stack, o),
        "soak": lambda: churn.run(stack, o, redis_url),
        "pages": lambda: pages.run(stack, o),
        "relay": lambda: relay.run(stack, o, redis_url),
        "ingest": lambda: ingest.run(stack, o, progress),
        "reads": lambda: reads.run(stack, o, progress),
        "replay": lambda: replay.run(stack, o),
        "archive": lambda: archive.run(stack, o),
        "export": lambda: export.run(stack, o),
        "pythons": lambda: pythons.run(o, stack.logs, progress),
        "import": lambda: history_import.run(stack, o, progress),
        "history": lambda: history.run(stack, o, progress),
        "bigrecord": lambda: bigrecord.run(stack, o, progress),
    }


async def run_all(options: Options, stack: Stack, progress: Callable[[str], None]) -> list[Outcome]:
    wanted = set(options.scenarios)
    outcomes: list[Outcome] = []
    if wanted - {"pythons"}:  # the pythons scenario's child runs start their own
        stack.start_mongo()
        stack.prepare_database(stack.env(storm.DATABASE), symbols=SYMBOLS, count=30)
    redis_url = stack.start_redis() if wanted & {"fanout", "burst", "relay", "soak", "scale"} else ""
    for name, call in steps(options, stack, redis_url, progress).items():
        if name in wanted:
            progress(name)
            outcome = call()
            outcomes.append(await outcome if inspect.isawaitable(outcome) else outcome)
            stack.stop_all_but_infrastructure()
    return outcomes


def render(outcomes: list[Outcome], *, quick: bool) -> str:
    targets = targets_table([t for o in outcomes for t in o.targets], quick=quick)
    return (
        f"{targets}\n\n{table([row for o in outcomes for row in o.rows], ('scenario', 'subject', 'figures', 'notes'))}"
    )


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
    results = {"started_at": started_at, "duration_s": duration, "quick": options.quick, "machine": machine()}
    results |= {"load_average_before": load_before, "load_average_after": os.getloadavg(), "open_files_limit": nofile}
    results["targets"] = [asdict(t) for o in outcomes for t in o.targets]
    results["scenarios"] = {o.name: o.data for o in outcomes}
    write_json(options.output, results)
    info = results["machine"]
    head = f"binancews benchmarks, {started_at}, {duration:.0f} s: {info['nproc']} x {info['cpu_model']}, "
    head += f"{info['ram_gib']} GiB RAM, load average {load_before[0]:.2f} before / {os.getloadavg()[0]:.2f} after"
    print(f"\n{head}\n\n{render(outcomes, quick=options.quick)}\n\nJSON: {options.output}")
    shutil.rmtree(options.workdir / "secantus-data", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
