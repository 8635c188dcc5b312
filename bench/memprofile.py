"""Where an idle websocket connection's memory goes, in one daphne: tracemalloc and object counts, diffed.

``python -m bench.memprofile --idle 2000`` starts SecantusDB with the connect
storm's data and one daphne run in-process under tracemalloc (``serve``, below:
daphne's own command line, plus a SIGUSR1 handler that writes a snapshot and
the live objects counted by type). It snapshots after a warm-up and again with
``--idle`` idle clients on ``/``, and prints what grew, per connection: the
allocation sites and the object types. A profiling tool, not a benchmark
(tracemalloc slows daphne down several times).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import pickle
import shutil
import signal
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from bench import load
from bench.options import RESULTS
from bench.scenarios import SYMBOLS
from bench.scenarios.storm import DATABASE
from bench.stack import DAPHNE_BACKLOG, Stack, rss
from klines.testing.servers import free_port, wait_for_port

FRAMES = 25  # traceback depth kept by tracemalloc


def serve(port: int, out: Path) -> None:
    """Run daphne in this process; each SIGUSR1 writes ``out/<n>.snapshot`` and ``out/<n>.types.json``."""
    tracemalloc.start(FRAMES)
    taken = 0

    def dump(signum: int, frame: object) -> None:
        nonlocal taken
        gc.collect()
        types = Counter(type(o).__qualname__ for o in gc.get_objects())
        snapshot = tracemalloc.take_snapshot()
        snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        with open(out / f"{taken}.snapshot", "wb") as f:
            pickle.dump(snapshot, f)
        (out / f"{taken}.types.json").write_text(json.dumps(types))
        (out / f"{taken}.done").write_text("")
        taken += 1

    signal.signal(signal.SIGUSR1, dump)
    from daphne.cli import CommandLineInterface

    endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog={DAPHNE_BACKLOG}"
    CommandLineInterface().run(["-e", endpoint, "binancews.asgi:application"])


async def _snapshot(process, out: Path, n: int) -> tuple[tracemalloc.Snapshot, Counter]:
    os.kill(process.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 300
    while not (out / f"{n}.done").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no snapshot")
        await asyncio.sleep(0.2)
    return await asyncio.to_thread(_load, out, n)


def _load(out: Path, n: int) -> tuple[tracemalloc.Snapshot, Counter]:
    with open(out / f"{n}.snapshot", "rb") as f:
        snapshot = pickle.load(f)
    return snapshot, Counter(json.loads((out / f"{n}.types.json").read_text()))


async def profile(stack: Stack, idle: int, top: int) -> None:
    env = stack.env(DATABASE)
    out = stack.workdir / "memprofile"
    shutil.rmtree(out, ignore_errors=True)  # an earlier run's snapshots would be read as this one's
    out.mkdir(parents=True)
    port = free_port()
    args = [sys.executable, "-m", "bench.memprofile", "serve", "--port", str(port), "--out", str(out)]
    process = stack._spawn("memprofile-daphne", args, env)
    await asyncio.to_thread(wait_for_port, port, timeout=300, process=process)  # tracemalloc slows start-up
    await load.storm(port, connections=200, concurrency=20)
    await asyncio.sleep(2)
    zero_rss = rss(process)
    before, types_before = await _snapshot(process, out, 0)
    clients = await load.open_idle([port], count=idle, concurrency=50)
    await asyncio.sleep(2)
    held_rss = rss(process)
    after, types_after = await _snapshot(process, out, 1)
    opened = len(clients.connections)
    await clients.close()
    print(f"{opened} idle clients ({clients.errors} errors); RSS {(held_rss - zero_rss) / opened / 1024:.1f} KiB each")
    stats = after.compare_to(before, "traceback")
    total = sum(s.size_diff for s in stats)
    print(f"tracemalloc: {total / opened / 1024:.2f} KiB per connection traced\n")
    for stat in stats[:top]:
        if stat.size_diff <= 0:
            continue
        print(f"{stat.size_diff / opened:8.0f} B  {stat.count_diff / opened:6.2f} blocks per connection")
        for line in stat.traceback.format()[-12:]:
            print("      " + line)
    print("\nobjects per connection (gc-tracked, by type):")
    grown = {k: (types_after[k] - types_before.get(k, 0)) / opened for k in types_after}
    for name, count in sorted(grown.items(), key=lambda kv: -kv[1])[:40]:
        if count >= 0.5:
            print(f"  {count:6.2f}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memprofile", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run_serve = sub.add_parser("serve")
    run_serve.add_argument("--port", type=int, required=True)
    run_serve.add_argument("--out", type=Path, required=True)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port, args.out)
        return 0
    load.raise_open_files_limit(args.idle * 2 + 1000)
    workdir = RESULTS / "work-memprofile"
    with Stack(workdir) as stack:
        stack.start_mongo()
        stack.prepare_database(stack.env(DATABASE), symbols=SYMBOLS, count=30)
        asyncio.run(profile(stack, args.idle, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
