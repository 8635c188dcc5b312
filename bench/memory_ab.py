"""A/B of the memory per idle connection between source trees, in one run.

``python -m bench.memory_ab --subject main=/tmp/main-tree --subject new=. --idle 2000 --rounds 3``
runs, for each round and each subject in rotated order, a fresh daphne from
that tree (``git archive <commit> | tar -x -C /tmp/main-tree`` makes one) on
the connect storm's data: 200 warm-up connections, RSS, ``--idle`` idle
clients, RSS again; then, with ``--storm N``, a timed connect storm of N
clients (100 in flight: connections/s, p99, and daphne's CPU per connection, which
the machine's load disturbs less than the rate). It prints each measurement and
the median per subject;
the subjects share the machine's noise, so compare them, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

from bench import load
from bench.options import RESULTS
from bench.report import latency_summary
from bench.scenarios import SYMBOLS
from bench.scenarios.memory import idle_rss
from bench.scenarios.storm import DATABASE
from bench.stack import Stack, cpu_seconds


async def measure(
    stack: Stack, env: dict[str, str], root: Path, idle: int, storm: int
) -> tuple[float, int, load.StormResult | None, float]:
    """KiB per idle connection on a fresh daphne run from ``root``, the failed connects, the timed storm."""
    process, port = stack.daphne("memory-ab-daphne", env, root=root)
    try:
        zero, held, clients = await idle_rss(process, port, idle)
        opened = len(clients.connections)
        await clients.close()
        cpu = cpu_seconds(process)
        timed = await load.storm(port, connections=storm, concurrency=100) if storm else None
        cpu = cpu_seconds(process) - cpu
    finally:
        stack.stop(process)
    cpu_us = cpu / len(timed.latencies) * 1e6 if timed and timed.latencies else 0.0
    return (held - zero) / max(opened, 1) / 1024, clients.errors, timed, cpu_us


async def run(subjects: dict[str, Path], idle: int, rounds: int, storm: int) -> None:
    with Stack(RESULTS / "work-memory-ab") as stack:
        stack.start_mongo()
        env = stack.env(DATABASE)
        stack.prepare_database(env, symbols=SYMBOLS, count=30)
        figures: dict[tuple[str, str], list[float]] = {}
        names = list(subjects)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                kib, errors, timed, cpu_us = await measure(stack, env, subjects[name], idle, storm)
                figures.setdefault((name, "KiB per idle connection"), []).append(kib)
                line = f"round {r} {name}: {kib:.2f} KiB, {errors} errors"
                if timed is not None:
                    figures.setdefault((name, "conn/s"), []).append(timed.rate)
                    figures.setdefault((name, "µs daphne CPU per connection"), []).append(cpu_us)
                    p99 = latency_summary(timed.latencies)["p99_ms"]
                    line += f"; storm {timed.rate:.0f} conn/s, p99 {p99:.0f} ms, {cpu_us:.0f} µs CPU/conn"
                print(f"{line}, load {os.getloadavg()[0]:.2f}", flush=True)
        for (name, what), values in figures.items():
            print(f"{name}: median {statistics.median(values):.2f} {what} of {[round(v, 2) for v in values]}")


def source_trees(parser: argparse.ArgumentParser, specs: list[str]) -> dict[str, Path]:
    """``--subject name=path`` options -> name -> the source tree; a path that is no binancews tree is an error."""
    subjects = {}
    for subject in specs:
        name, _, path = subject.partition("=")
        if not path or not (Path(path) / "binancews" / "asgi.py").exists():
            parser.error(f"--subject {subject!r}: want name=path of a binancews source tree")
        subjects[name] = Path(path).resolve()
    return subjects


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--subject", action="append", required=True, help="name=path of a source tree")
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storm", type=int, default=0, help="then a timed connect storm of this many clients")
    args = parser.parse_args(argv)
    subjects = source_trees(parser, args.subject)
    load.raise_open_files_limit(args.idle * 2 + 1000)
    asyncio.run(run(subjects, args.idle, args.rounds, args.storm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
