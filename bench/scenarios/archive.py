"""Scenario archive: a month of 1m (43,200 klines) downloaded as the mirror's Binance-archive zip.

BTCUSDT 1m for April 2024 stored through the store's own writes, then daphne's
``/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-04.zip``: the first (cold)
download, its ``.CHECKSUM``, then ``--archive-downloads`` warm ones (the SHA-256 kept, so
ETag and Content-Length are sent; the zip is still built from the store each time).
MB/s and time to first byte per download, daphne's RSS; every download checked against the checksum.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx

from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from bench.stack import Stack, rss

DATABASE = "bench_archive"
PATH = "data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-04.zip"
STORE = """
from klines.binance.parse import parse_rest_row
from klines.simexchange.series import KlineSeries
from klines.store.exchange import claim_record
from klines.store.writes import insert_new
claim_record("bench", rest_url="http://127.0.0.1:1")
series = KlineSeries(interval="1m", interval_ms=60_000)
first = 1_711_929_600_000 // 60_000  # 2024-04-01 00:00 UTC
for start in range(first, first + 43_200, 5_000):
    rows = [series.kline("BTCUSDT", i).rest_row() for i in range(start, min(start + 5_000, first + 43_200))]
    insert_new([parse_rest_row(r, symbol="BTCUSDT", interval="1m") for r in rows])
"""


def download(url: str) -> dict[str, Any]:
    """One GET: time to the first body byte, total time, bytes, MB/s and the body's SHA-256."""
    digest, size, first = hashlib.sha256(), 0, None
    started = time.perf_counter()
    with httpx.stream("GET", url, timeout=300) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            first = first or time.perf_counter() - started
            digest.update(chunk)
            size += len(chunk)
    total = time.perf_counter() - started
    return {"ttfb_ms": (first or total) * 1000, "seconds": total, "bytes": size, "mb_per_s": size / total / 1e6,
            "sha256": digest.hexdigest(), "etag": response.headers.get("etag")}  # fmt: skip


def run(stack: Stack, options: Options) -> Outcome:
    env = stack.env(DATABASE, KLINE_SYMBOLS="btcusdt", KLINE_INTERVALS="1m")
    stack.prepare_database(env)
    began = time.perf_counter()
    stack.manage(["shell", "--no-imports", "-c", STORE], env, timeout=600)
    stored_s = time.perf_counter() - began
    process, port = stack.daphne("archive-daphne", env)
    url = f"http://127.0.0.1:{port}/{PATH}"
    rss_before = rss(process)
    runs = [{"run": "cold", **download(url)}]
    began = time.perf_counter()
    published = httpx.get(url + ".CHECKSUM", timeout=300).text.split()[0]
    checksum_s = time.perf_counter() - began
    runs += [{"run": f"warm {i + 1}", **download(url)} for i in range(options.archive_downloads)]
    rss_after = rss(process)
    same = all(r["sha256"] == published for r in runs)
    data = {"klines": 43_200, "stored_s": stored_s, "zip_bytes": runs[0]["bytes"], "downloads": runs}
    data |= {"checksum_s": checksum_s, "matches_checksum": same, "daphne_rss_mb": [rss_before / 1e6, rss_after / 1e6]}
    outcome = Outcome("archive", data)
    title = f"archive download (BTCUSDT 1m, April 2024: 43,200 klines, {runs[0]['bytes']:,} bytes zipped)"
    for r in runs:
        figures = f"{fmt(r['mb_per_s'], 2)} MB/s, first byte {fmt(r['ttfb_ms'], 0)} ms, {fmt(r['seconds'], 2)} s"
        outcome.rows.append((title, r["run"], figures, "matches .CHECKSUM" if same else "DIFFERS FROM .CHECKSUM"))
    notes = f"daphne RSS {rss_before / 1e6:.0f} -> {rss_after / 1e6:.0f} MB; stored in {stored_s:.1f} s"
    outcome.rows.append((title, ".CHECKSUM (cold)", f"{checksum_s:.2f} s", notes))
    outcome.targets = [check("archive downloads match their .CHECKSUM (1 = yes)", float(same), ">=", 1)]
    return outcome
