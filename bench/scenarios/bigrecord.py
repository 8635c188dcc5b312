"""Scenario bigrecord: the admin's kline list and the storage per kline on a large record.

The record (20 symbols of one-minute klines up to now, ``--bigrecord-klines`` in
all) is seeded by :mod:`bench.bulkseed`. Then: bytes per stored kline from
SecantusDB's ``collStats`` and from the data directory's growth on disk, the
projection for 500 symbols x 3 years of 1m, 5m and 1h klines, and the admin's
list pages timed by :mod:`bench.admin_pages` (Django's test client, logged in,
over this database), with one page of Django's stock change list as the baseline.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from pymongo import MongoClient

from bench.options import Options
from bench.report import check, fmt, latency_summary
from bench.scenarios import RECORD_SYMBOLS as SYMBOLS
from bench.scenarios import Outcome, record_env, seed_record
from bench.stack import Stack

DATABASE = "bench_bigrecord"
INTERVAL = "1m"  # as the record
KLINES_PER_SYMBOL_YEAR = {"1m": 525_600, "5m": 105_120, "1h": 8_760}  # the projection's intervals
PROJECTED_SYMBOLS, PROJECTED_YEARS = 500, 3
STOCK_TIMEOUT = 240.0  # Django's own change list counts and scans the collection: a lower bound past this


# SecantusDB's files by what they hold (WiredTiger tables in one directory, shared by every database)
DISK_PARTS = {
    "documents": ("secantus_documents_", "secantus_natural_seq"),
    "indexes": ("secantus_index_entries", "secantus_unique_keys"),
    "oplog": ("secantus_oplog",),
    "journal": ("WiredTigerLog",),
}


def disk_bytes(path: Path) -> dict[str, int]:
    """Bytes of the data directory's files, per :data:`DISK_PARTS` ("other": the rest)."""
    sizes = dict.fromkeys([*DISK_PARTS, "other"], 0)
    for f in path.iterdir():
        if f.is_file():
            part = next((p for p, prefixes in DISK_PARTS.items() if f.name.startswith(prefixes)), "other")
            sizes[part] += f.stat().st_size
    return sizes


def storage(uri: str, data_dir: Path, before: dict[str, int]) -> dict[str, object]:
    """Bytes per kline: SecantusDB's ``collStats`` (data, indexes, average document) and the disk's growth
    (documents + indexes; the oplog and the journal apart)."""
    client = MongoClient(uri)
    stats = client[DATABASE].command("collStats", "klines")
    client.close()
    count = stats["count"]
    after = disk_bytes(data_dir)
    growth = {part: after[part] - before[part] for part in after}
    grown = growth["documents"] + growth["indexes"]
    return {
        "count": count,
        "avg_obj_size": stats["avgObjSize"],
        "storage_size": stats["storageSize"],
        "total_index_size": stats["totalIndexSize"],
        "index_sizes": stats.get("indexSizes", {}),
        "bytes_per_kline_stats": (stats["storageSize"] + stats["totalIndexSize"]) / count,
        "index_bytes_per_kline": stats["totalIndexSize"] / count,
        "disk_growth": growth,
        "bytes_per_kline_disk": grown / count,
        "document_bytes_per_kline_disk": growth["documents"] / count,
        "index_bytes_per_kline_disk": growth["indexes"] / count,
        "oplog_bytes_per_kline_disk": growth["oplog"] / count,
    }


def projection(bytes_per_kline: float) -> dict[str, float]:
    klines = PROJECTED_SYMBOLS * PROJECTED_YEARS * sum(KLINES_PER_SYMBOL_YEAR.values())
    return {"klines": klines, "bytes": klines * bytes_per_kline}


async def run(stack: Stack, options: Options, progress: Callable[[str], None]) -> Outcome:
    assert stack.mongo is not None
    env = record_env(stack, DATABASE)
    stack.prepare_database(env)
    data_dir = stack.mongo.data_dir
    before = disk_bytes(data_dir)
    minutes, seeded, seeding, seeding_row = seed_record(stack, DATABASE, options.bigrecord_klines, progress)
    sizes = storage(stack.mongo.uri, data_dir, before)
    progress(f"bigrecord: {sizes['bytes_per_kline_disk']:.0f} bytes per kline on disk")
    probe = [
        "--symbols",
        ",".join(SYMBOLS),
        "--interval",
        INTERVAL,
        "--first-open-ms",
        str(seeded.first_open_ms),
        "--minutes",
        str(minutes),
    ]
    pages = json.loads(
        stack.python("bench.admin_pages", [*probe, "--pages", str(options.bigrecord_pages)], env, timeout=1800)
    )
    progress("bigrecord: admin pages timed; Django's stock change list next")
    try:
        stock: float | None = json.loads(stack.python("bench.admin_pages", [*probe, "--stock"], env, STOCK_TIMEOUT))[
            "stock"
        ]
    except subprocess.TimeoutExpired:
        stock = None  # slower than STOCK_TIMEOUT
    summaries = {kind: latency_summary(times) for kind, times in pages["times"].items()}
    projected = {
        "per_stats": projection(sizes["bytes_per_kline_stats"]),
        "per_disk": projection(sizes["bytes_per_kline_disk"]),
    }
    first = summaries["first"]
    outcome = Outcome(
        "bigrecord",
        {
            **seeding,
            "storage": sizes,
            "projection": {
                "symbols": PROJECTED_SYMBOLS,
                "years": PROJECTED_YEARS,
                "klines_per_symbol_year": KLINES_PER_SYMBOL_YEAR,
                **projected,
            },
            "admin": summaries,
            "rows_per_page": pages["rows_per_page"],
            "stock_changelist_s": stock,
        },
    )
    title = f"bigrecord ({seeded.klines:,} klines)"
    gib = 1024**3
    outcome.rows += [
        (title, *seeding_row),
        (
            title,
            "bytes per kline: data + indexes",
            f"disk {sizes['bytes_per_kline_disk']:.0f} (indexes {sizes['index_bytes_per_kline_disk']:.0f}; "
            f"oplog +{sizes['oplog_bytes_per_kline_disk']:.0f}); collStats {sizes['bytes_per_kline_stats']:.0f} "
            f"(indexes {sizes['index_bytes_per_kline']:.0f}, avgObjSize {sizes['avg_obj_size']:.0f})",
            f"{PROJECTED_SYMBOLS} symbols x {PROJECTED_YEARS} y x 1m+5m+1h = {projected['per_disk']['klines']:,} "
            f"klines: {projected['per_disk']['bytes'] / gib:,.0f} GiB on disk "
            f"({projected['per_stats']['bytes'] / gib:,.0f} GiB by collStats)",
        ),
    ]
    labels = {
        "first": "admin list, filtered by symbol + interval",
        "next": "  its next page (Older link)",
        "day": "  a day of the drill-down",
        "unfiltered": "admin list, all 20 symbols merged",
        "detail": "a kline's detail page",
    }
    for kind, label in labels.items():
        s = summaries[kind]
        outcome.rows.append(
            (title, label, f"p50 {fmt(s['p50_ms'])} / p99 {fmt(s['p99_ms'])} ms", f"{s['count']} pages")
        )
    outcome.rows.append(
        (
            title,
            "Django's stock change list (baseline), filtered",
            f"> {STOCK_TIMEOUT:.0f} s" if stock is None else f"{stock:.1f} s",
            "one page: counts, distinct symbols/intervals, date range, ORM pipelines",
        )
    )
    outcome.targets = [check("admin list filtered, p99 (s)", first["p99_ms"] / 1000, "<", 1)]
    return outcome
