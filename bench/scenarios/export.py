"""Scenario export: one symbol's 1m record to Parquet, ``export_klines``' path against bare pymongo + pyarrow.

``--export-minutes`` klines of BTCUSDT (:mod:`bench.bulkseed`); each side runs in its own process
(``python -m bench.scenarios.export SIDE ...``: timed inside, after imports and Django's setup; peak
RSS from ``wait4``), in the order export, bare, bare_fast, export; each side's best run counts.
``export`` is :func:`klines.export.run.export_pair`, what ``export_klines --format parquet`` runs;
``bare`` one ``find`` on the ``kline_latest`` index, bson's ``Decimal128.to_decimal``, the same schema
and row groups through pyarrow; ``bare_fast`` the same with the store's ``decimal_from_bson``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import bulkseed
from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from bench.stack import Stack

DATABASE = "bench_export"
SYMBOL = "BTCUSDT"


def bare(uri: str, out: Path, start: datetime, end: datetime, *, fast: bool) -> int:
    """The baseline: bare pymongo read, pyarrow write, same schema and row groups; returns klines written."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pymongo import MongoClient

    from klines.export.parquet import DECIMALS, ROW_GROUP, SCHEMA
    from klines.store.records import decimal_from_bson

    convert = decimal_from_bson if fast else lambda value: value.to_decimal()
    query = {"symbol": SYMBOL, "interval": "1m", "open_time": {"$gte": start, "$lt": end}}
    klines = MongoClient(uri, tz_aware=True)[DATABASE]["klines"]
    cursor = klines.find(query, sort=[("open_time", 1)], batch_size=10_000).hint("kline_latest")
    writer, count = pq.ParquetWriter(out, SCHEMA, compression="zstd"), 0
    while documents := cursor.to_list(ROW_GROUP):
        columns = {
            name: pa.array([d[name] for d in documents]).dictionary_encode().cast(SCHEMA.field(name).type)
            for name in ("symbol", "interval")
        }
        for name in ("open_time", "close_time"):
            columns[name] = pa.array([d[name] for d in documents], SCHEMA.field(name).type)
        columns["trades"] = pa.array([int(d["trades"]) for d in documents], pa.int64())
        for name in DECIMALS:
            columns[name] = pa.array([convert(d[name]) for d in documents], SCHEMA.field(name).type)
        writer.write_table(pa.table([columns[f.name] for f in SCHEMA], schema=SCHEMA), row_group_size=ROW_GROUP)
        count += len(documents)
    writer.close()
    return count


def child(side: str, uri: str, out: str, start: str, end: str) -> None:
    """One side, timed after its imports; prints ``{"klines", "seconds"}``."""
    first, last = datetime.fromisoformat(start), datetime.fromisoformat(end)
    if side == "export":
        import django

        django.setup()
        from klines.export.run import export_pair

        began = time.perf_counter()
        count = export_pair("parquet", SYMBOL, "1m", first, last, Path(out).parent, force=True).klines
    else:
        began = time.perf_counter()
        count = bare(uri, Path(out), first, last, fast=side == "bare_fast")
    print(json.dumps({"klines": count, "seconds": time.perf_counter() - began}))


def measure(side: str, env: dict[str, str], out: Path, start: datetime, end: datetime) -> dict[str, float]:
    """Run one side to completion: its figures, its peak RSS (``wait4``) and the file's size."""
    args = [side, env["MONGO_URI"], str(out), start.isoformat(), end.isoformat()]
    process = subprocess.Popen([sys.executable, "-m", "bench.scenarios.export", *args], env=env, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    assert process.stdout is not None
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"export benchmark side {side} exited {os.waitstatus_to_exitcode(status)}")
    result = json.loads(process.stdout.read().strip().splitlines()[-1])
    result |= {"peak_rss_mb": usage.ru_maxrss / 1024, "klines_per_s": result["klines"] / result["seconds"]}
    return result | {"file_mb": out.stat().st_size / 1e6}


def run(stack: Stack, options: Options) -> Outcome:
    assert stack.mongo is not None
    env = stack.env(DATABASE)
    stack.prepare_database(env)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = options.export_minutes
    bulkseed.seed(stack.mongo.uri, DATABASE, "klines", symbols=[SYMBOL], interval="1m", minutes=minutes, now=now)
    best: dict[str, dict[str, float]] = {}
    for n, side in enumerate(("export", "bare", "bare_fast", "export")):
        directory = stack.workdir / f"export-{n}"
        directory.mkdir(exist_ok=True)
        result = measure(side, env, directory / f"{SYMBOL}-1m.parquet", now - timedelta(minutes=minutes), now)
        if side not in best or result["klines_per_s"] > best[side]["klines_per_s"]:
            best[side] = result
    ratio = best["export"]["klines_per_s"] / best["bare"]["klines_per_s"]
    ratio_fast = best["export"]["klines_per_s"] / best["bare_fast"]["klines_per_s"]
    outcome = Outcome("export", {"minutes": minutes, "sides": best, "ratio": ratio, "ratio_fast": ratio_fast})
    title = f"export to Parquet ({minutes:,} klines of {SYMBOL} 1m)"
    for side, r in best.items():
        figures = f"{fmt(r['klines_per_s'])} klines/s ({fmt(r['seconds'])} s)"
        outcome.rows.append((title, side, figures, f"peak RSS {fmt(r['peak_rss_mb'])} MB, file {fmt(r['file_mb'])} MB"))
    outcome.rows.append((title, "ratio export / bare, / bare_fast", f"{ratio:.2f}, {ratio_fast:.2f}", "best runs"))
    outcome.targets = [
        check("export: export_klines / bare klines/s", ratio, ">=", 0.8, "best run of each"),
        check("export: export_klines peak RSS MB", best["export"]["peak_rss_mb"], "<=", 300),
    ]
    return outcome


if __name__ == "__main__":
    child(*sys.argv[1:])
