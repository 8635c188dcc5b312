"""Export of one symbol's 1m record to Parquet: ``export_klines``' path against bare pymongo + pyarrow.

``python -m bench.export_parquet [--minutes 525600]`` starts a SecantusDB in a
scratch directory, migrates it, seeds ``--minutes`` klines of BTCUSDT with
:mod:`bench.bulkseed`, then runs each side in its own process (timed inside,
after imports and Django's setup; peak RSS from ``wait4``), the export's side
first, then the baseline, then the export again:

- ``export``: :func:`klines.export.run.export_pair` (``klines_in_batches`` ->
  ``ParquetOut``), what ``manage.py export_klines --format parquet`` runs;
- ``bare``: one ``find`` sorted on the ``kline_latest`` index, bson's own
  ``Decimal128.to_decimal``, the same schema and row groups through pyarrow;
- ``bare_fast``: the same with the store's ``decimal_from_bson``.

Prints a table and writes ``bench/results/export_parquet.json``. Goal: ratio
(export klines/s / bare klines/s; each side's best of its runs) >= 0.8, export peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench_export"
SYMBOL = "BTCUSDT"


def bare(uri: str, out: Path, start: datetime, end: datetime, *, fast: bool = False) -> int:
    """The baseline: bare pymongo read, pyarrow write, same schema and row groups; returns klines written.

    With ``fast``, the Decimal128s are converted by the store's own ``decimal_from_bson`` (not bson's
    ``to_decimal``): the baseline without the one cost the project has already optimised away.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pymongo import MongoClient

    from klines.export.parquet import DECIMALS, ROW_GROUP, SCHEMA
    from klines.store.records import decimal_from_bson

    convert = decimal_from_bson if fast else lambda value: value.to_decimal()

    klines = MongoClient(uri, tz_aware=True)[DATABASE]["klines"]
    cursor = klines.find(
        {"symbol": SYMBOL, "interval": "1m", "open_time": {"$gte": start, "$lt": end}},
        sort=[("open_time", 1)],
        batch_size=10_000,
    ).hint("kline_latest")
    writer = pq.ParquetWriter(out, SCHEMA, compression="zstd")
    count = 0
    while True:
        documents = cursor.to_list(ROW_GROUP)
        if not documents:
            break
        columns = {
            "symbol": pa.array([d["symbol"] for d in documents]).dictionary_encode().cast(SCHEMA.field("symbol").type),
            "interval": pa.array([d["interval"] for d in documents])
            .dictionary_encode()
            .cast(SCHEMA.field("interval").type),
            "open_time": pa.array([d["open_time"] for d in documents], SCHEMA.field("open_time").type),
            "close_time": pa.array([d["close_time"] for d in documents], SCHEMA.field("close_time").type),
            "trades": pa.array([int(d["trades"]) for d in documents], pa.int64()),
        }
        for name in DECIMALS:
            columns[name] = pa.array([convert(d[name]) for d in documents], SCHEMA.field(name).type)
        writer.write_table(pa.table([columns[f.name] for f in SCHEMA], schema=SCHEMA), row_group_size=ROW_GROUP)
        count += len(documents)
    writer.close()
    return count


def export(out: Path, start: datetime, end: datetime) -> int:
    """``export_klines``' own path (Django set up from the environment)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binancews.settings")
    django.setup()
    from django.conf import settings

    from klines.export.run import export_pair

    settings.DEBUG = False  # as a production run; DEBUG's query log is not the export's cost
    return export_pair("parquet", SYMBOL, "1m", start, end, out.parent, force=True).klines  # out: SYMBOL-1m.parquet


def child(args: argparse.Namespace) -> None:
    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    out = Path(args.out)
    began = time.perf_counter()
    if args.side == "export":
        count = export(out, start, end)
    else:
        count = bare(args.uri, out, start, end, fast=args.side == "bare_fast")
    print(json.dumps({"klines": count, "seconds": time.perf_counter() - began}))


def measure(side: str, env: dict[str, str], out: Path, start: datetime, end: datetime) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.export_parquet", "--child", side, "--out", str(out)]
    argv += ["--uri", env["MONGO_URI"], "--start", start.isoformat(), "--end", end.isoformat()]
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    output = process.stdout.read() if process.stdout else ""
    if process.returncode:
        raise RuntimeError(f"{side} exited {process.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["klines_per_s"] = result["klines"] / result["seconds"]
    result["file_mb"] = out.stat().st_size / 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export_parquet")
    parser.add_argument("--minutes", type=int, default=525_600, help="klines to seed and export (a year of 1m)")
    parser.add_argument("--child", choices=("bare", "bare_fast", "export"))
    parser.add_argument("--out")
    parser.add_argument("--uri")
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args()
    if args.child:
        args.side = args.child
        child(args)
        return
    sys.path.insert(0, str(ROOT))
    from bench import bulkseed
    from klines.testing.servers import SecantusServer, manage, service_env

    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        mongo = SecantusServer(Path(scratch) / "data").start()
        try:
            env = service_env(mongo.uri, DATABASE)
            if manage(["migrate", "--noinput", "-v0"], env).wait(300) != 0:
                raise RuntimeError("migrate failed")
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            seeded = bulkseed.seed(
                mongo.uri, DATABASE, "klines", symbols=[SYMBOL], interval="1m", minutes=args.minutes, now=now
            )
            print(f"seeded {seeded.klines:,} klines in {seeded.seconds:.0f} s", flush=True)
            start, end = now - timedelta(minutes=args.minutes), now
            rows = {}
            for side in ("export", "bare", "bare_fast", "export2"):
                name = side.removesuffix("2")
                directory = Path(scratch) / side
                directory.mkdir()
                result = measure(name, env, directory / f"{SYMBOL}-1m.parquet", start, end)
                print(f"{side}: {result}", flush=True)
                if name not in rows or result["klines_per_s"] > rows[name]["klines_per_s"]:
                    rows[name] = result
        finally:
            mongo.stop()
    ratio = rows["export"]["klines_per_s"] / rows["bare"]["klines_per_s"]
    ratio_fast = rows["export"]["klines_per_s"] / rows["bare_fast"]["klines_per_s"]
    print(f"{'side':<10}{'klines':>10}{'seconds':>9}{'klines/s':>10}{'peak RSS MB':>13}{'file MB':>9}")
    for name, r in rows.items():
        print(
            f"{name:<10}{r['klines']:>10,}{r['seconds']:>9.1f}{r['klines_per_s']:>10,.0f}"
            f"{r['peak_rss_mb']:>13.0f}{r['file_mb']:>9.1f}"
        )
    print(f"ratio export/bare: {ratio:.2f} (goal >= 0.8), export/bare_fast: {ratio_fast:.2f}")
    print(f"export peak RSS {rows['export']['peak_rss_mb']:.0f} MB (goal <= 300)")
    report = {"minutes": args.minutes, "rows": rows, "ratio": ratio, "ratio_fast": ratio_fast}
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "export_parquet.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
