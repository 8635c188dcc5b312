"""Archive download benchmark: a month of 1m (43,200 klines) as the mirror's Binance-archive zip.

Stores BTCUSDT 1m for April 2024 in a fresh SecantusDB, starts daphne on it and
downloads ``/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-04.zip``:
the first (cold) download, its ``.CHECKSUM``, then warm downloads (the SHA-256
kept, so ETag and Content-Length are sent; the zip is still built from the store
each time). Prints MB/s and time to first byte per download and daphne's RSS,
checks every download against the checksum and writes JSON::

    .venv/bin/python -m bench.archive_download [--downloads 3] [--json bench-results/archive_download.json]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.report import fmt, machine, table, write_json
from klines.testing.servers import SecantusServer, daphne, free_port, manage, service_env, stop_process

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
    digest, size = hashlib.sha256(), 0
    started = time.perf_counter()
    first = None
    with httpx.stream("GET", url, timeout=300) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if first is None:
                first = time.perf_counter() - started
            digest.update(chunk)
            size += len(chunk)
        headers = dict(response.headers)
    total = time.perf_counter() - started
    return {
        "ttfb_ms": (first or total) * 1000,
        "seconds": total,
        "bytes": size,
        "mb_per_s": size / total / 1e6,
        "sha256": digest.hexdigest(),
        "etag": headers.get("etag"),
        "content_length": headers.get("content-length"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--downloads", type=int, default=3, help="warm downloads after the first (default 3)")
    parser.add_argument("--json", type=Path, default=Path("bench-results/archive_download.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as workdir:
        secantus = SecantusServer(Path(workdir) / "db").start()
        process = None
        try:
            env = service_env(secantus.uri, "archive_bench", KLINE_SYMBOLS="btcusdt", KLINE_INTERVALS="1m")
            assert manage(["migrate", "--noinput", "-v0"], env).wait(300) == 0
            began = time.perf_counter()
            assert manage(["shell", "--no-imports", "-c", STORE], env).wait(600) == 0
            stored_seconds = time.perf_counter() - began
            port = free_port()
            process = daphne(port, env, Path(workdir) / "daphne.log")
            url = f"http://127.0.0.1:{port}/{PATH}"
            daphne_process = psutil.Process(process.pid)
            rss_before = daphne_process.memory_info().rss
            runs = [{"run": "cold", **download(url)}]
            began = time.perf_counter()
            checksum = httpx.get(url + ".CHECKSUM", timeout=300).text
            checksum_seconds = time.perf_counter() - began
            runs += [{"run": f"warm {i + 1}", **download(url)} for i in range(args.downloads)]
            rss_after = daphne_process.memory_info().rss
        finally:
            if process is not None:
                stop_process(process)
            secantus.stop()
    published = checksum.split()[0]
    assert all(r["sha256"] == published for r in runs), "a download differs from the published checksum"
    print(f"BTCUSDT 1m, April 2024 (43,200 klines) stored in {stored_seconds:.1f} s; zip {runs[0]['bytes']:,} bytes")
    rows = [(r["run"], fmt(r["ttfb_ms"], 0), fmt(r["seconds"], 2), fmt(r["mb_per_s"], 2)) for r in runs]
    print(table(rows, ("download", "TTFB ms", "total s", "MB/s")))
    print(f".CHECKSUM (cold: the zip built and hashed once): {checksum_seconds:.2f} s")
    print(f"daphne RSS: {rss_before / 1e6:.0f} MB before, {rss_after / 1e6:.0f} MB after the downloads")
    result = {
        "machine": machine(),
        "klines": 43_200,
        "zip_bytes": runs[0]["bytes"],
        "downloads": runs,
        "checksum_seconds": checksum_seconds,
        "daphne_rss_mb": {"before": rss_before / 1e6, "after": rss_after / 1e6},
    }
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
