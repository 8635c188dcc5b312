"""Measure a kept record (built by ``python -m bench.bulkseed --dir``) under a normal SecantusDB.

``python -m bench.keptrecord --dir /work/bench-data/10m --pages 40 --output docs/bench/x.json``:
bytes per kline (the data directory's files and ``collStats``), the plans of
the admin's and the mirror's reads (``explain``), the admin's kline list pages
(:mod:`bench.admin_pages`), and 1,500-kline ``/fapi/v1/klines`` pages at random
``startTime`` s asked one at a time of a daphne (the Procfile's server) over the
same data. Every server runs as the tests and the benchmarks run it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from bench.bulkseed import open_record
from bench.history_pages import PAGE, Pages
from bench.report import latency_summary
from bench.scenarios.bigrecord import disk_bytes
from klines.testing.servers import ROOT, daphne, free_port, service_env, stop_process

COLLSTATS_TIMEOUT = 900  # seconds


def plans(client: MongoClient, meta: dict[str, Any]) -> dict[str, Any]:
    """``explain`` of the two reads as the service sends them (:mod:`klines.store.pipelines`): the admin's first
    page (the newest 101 of one stream, in the first lookback window) and a 1,500-kline page from mid-record."""
    from klines.store import pipelines

    symbol, interval = meta["symbols"][0], meta["interval"]
    middle = datetime.fromtimestamp((meta["first_open_ms"] + meta["minutes"] // 2 * 60_000) / 1000, UTC)
    newest = datetime.fromtimestamp((meta["first_open_ms"] + meta["minutes"] * 60_000) / 1000, UTC)
    reads = {
        "admin_list": pipelines.newest_first(symbol, interval, 101, since=newest - timedelta(minutes=400)),
        "klines_page": pipelines.klines_between(
            symbol, interval, middle, middle + timedelta(minutes=PAGE), PAGE, newest_first=False
        ),
    }
    database = client[meta["database"]]
    out = {}
    for name, pipeline in reads.items():
        explained = database.command("aggregate", meta["collection"], pipeline=pipeline, explain=True)
        plan = explained["queryPlanner"]["winningPlan"]
        out[name] = {"stage": plan["stage"], "input": plan.get("inputStage"), "pipeline": str(pipeline)}
    return out


def klines_pages(port: int, meta: dict[str, Any], count: int) -> list[float]:
    """Seconds per random full page, asked one at a time on one keep-alive connection."""
    pages = Pages(meta["symbols"], meta["first_open_ms"], meta["minutes"])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    times = []
    for _ in range(count + 1):  # the first one warms up (imports, the first connection to the database)
        target = pages()
        began = time.monotonic()
        connection.request("GET", target)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.monotonic() - began
        if response.status != 200 or len(json.loads(body)) != PAGE:
            raise RuntimeError(f"{target}: HTTP {response.status}, {body[:200]!r}")
        times.append(elapsed)
    connection.close()
    return times[1:]


def measure(directory: Path, pages: int) -> dict[str, Any]:
    meta = json.loads((directory / "record.json").read_text())
    if not meta.get("complete"):  # measured on the symbols stored in full, said so in the output
        done = json.loads((directory / "progress.json").read_text())
        meta["symbols"] = [s for s in meta["symbols"] if done.get(s, 0) >= meta["minutes"]]
        meta["stored_per_symbol"] = done
    data = directory / "data"
    load_before = os.getloadavg()
    disk = disk_bytes(data)
    server = open_record(data)
    work = Path(tempfile.mkdtemp(prefix="keptrecord-"))
    try:
        env = service_env(server.uri, meta["database"], KLINE_SYMBOLS=",".join(meta["symbols"]))
        env["KLINE_INTERVAL"] = meta["interval"]
        probe = ["--symbols", ",".join(meta["symbols"]), "--interval", meta["interval"]]
        probe += ["--first-open-ms", str(meta["first_open_ms"]), "--minutes", str(meta["minutes"])]
        admin = json.loads(
            subprocess.run(
                [sys.executable, "-m", "bench.admin_pages", *probe, "--pages", str(pages)],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
                timeout=1800,
            ).stdout
        )
        port = free_port()
        service = daphne(port, env, work / "daphne.log")
        try:
            page_times = klines_pages(port, meta, pages)
        finally:
            stop_process(service)
        client = MongoClient(server.uri, socketTimeoutMS=COLLSTATS_TIMEOUT * 1000)
        explained = plans(client, meta)
        try:  # SecantusDB's collStats reads every document and index entry
            stats = client[meta["database"]].command("collStats", meta["collection"])
        except PyMongoError as exc:
            stats = {"error": repr(exc)}
        client.close()
    finally:
        server.stop()
    count = stats.get("count") or sum(meta.get("stored_per_symbol", {}).values()) or meta["klines"]
    return {
        "record": {k: v for k, v in meta.items() if k != "indexes"},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "storage": {
            "count": count,
            "coll_stats": stats,
            "bytes_per_kline_stats": (stats["storageSize"] + stats["totalIndexSize"]) / count
            if "count" in stats
            else None,
            "disk": disk,
            "bytes_per_kline_disk": (disk["documents"] + disk["indexes"]) / count,
            "document_bytes_per_kline_disk": disk["documents"] / count,
            "index_bytes_per_kline_disk": disk["indexes"] / count,
        },
        "explain": explained,
        "admin": {kind: latency_summary(times) for kind, times in admin["times"].items()},
        "admin_rows_per_page": admin["rows_per_page"],
        "klines_page_alone": latency_summary(page_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.keptrecord", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--pages", type=int, default=40, help="pages of each kind")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    result = measure(args.dir, args.pages)
    args.output.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("admin", "klines_page_alone")}, indent=1), flush=True)


if __name__ == "__main__":
    main()
