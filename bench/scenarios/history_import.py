"""Scenario import: ``backfill_klines`` of one symbol's 1m archive files against a bare ``insert_many``.

The simulator (``manage.py simulate_exchange``) serves BTCUSDT's monthly 1m
archive zips on 127.0.0.1 (generated before the clock starts); ``backfill_klines`` imports the whole months before
this one (a year by default) into SecantusDB. The baseline inserts the very
documents it stored again, under a shadow symbol, into the same collection:
``insert_many(ordered=False)`` of 10,000 at a time, the command's own write
shape, reads from the store untimed. Rounds alternate which goes first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pymongo

from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from bench.scenarios.burst import timed_insert
from bench.stack import Stack
from klines.binance.archive import archive_files
from klines.binance.archive_csv import BATCH
from klines.testing.servers import ROOT, exchange_urls

DATABASE = "bench_import"
SYMBOL = "BTCUSDT"


def backfill(env: dict[str, str], since: datetime, until: datetime) -> tuple[float, int]:
    """Run the command to completion: (wall seconds, peak RSS bytes from ``wait4``)."""
    args = ["backfill_klines", "--since", f"{since:%Y-%m-%d}", "--until", f"{until:%Y-%m-%d}", "--quiet"]
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    out = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or "complete: every kline" not in out:
        raise RuntimeError(f"backfill_klines failed or left gaps:\n{out}")
    return time.perf_counter() - began, usage.ru_maxrss * 1024


def bare(klines: pymongo.collection.Collection, since: datetime, until: datetime) -> float:
    """Seconds the ``insert_many`` calls of the stored documents, as shadows, take (the reads untimed)."""
    step = timedelta(minutes=BATCH)
    lows = [since + n * step for n in range(-(-(until - since) // step))]
    queries = (
        {"symbol": SYMBOL, "interval": "1m", "open_time": {"$gte": low, "$lt": min(until, low + step)}} for low in lows
    )
    return sum(timed_insert(klines, query, ordered=False)[0] for query in queries)


def run(stack: Stack, options: Options, progress) -> Outcome:
    env = stack.env(DATABASE, KLINE_SYMBOLS=SYMBOL.lower(), KLINE_INTERVALS="1m")
    stack.prepare_database(env)
    argv = [sys.executable, str(ROOT / "manage.py"), "simulate_exchange", "--symbols", SYMBOL, "--interval", "1m"]
    _, port = stack.serve("import-exchange", lambda port: [*argv, "--port", str(port)], env)
    urls = {**exchange_urls(port), "BINANCE_ARCHIVE_URL": f"http://127.0.0.1:{port}"}
    env |= urls
    until = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    since = until
    for _ in range(options.import_months):
        since = (since - timedelta(days=1)).replace(day=1)
    for file in archive_files(SYMBOL, "1m", since=since, until=until, today=until.date()):  # served from memory
        urllib.request.urlopen(file.checksum_url(urls["BINANCE_ARCHIVE_URL"]), timeout=120).read()
    count = int((until - since) / timedelta(minutes=1))
    klines = pymongo.MongoClient(env["MONGO_URI"])[DATABASE]["klines"]
    runs: dict[str, list[float]] = {"backfill": [], "bare": []}
    peaks = []
    for round_ in range(options.import_rounds):
        klines.delete_many({"symbol": "X" + SYMBOL[1:]})
        order = ("bare", "backfill") if round_ % 2 else ("backfill", "bare")
        for which in order:
            progress(f"import round {round_ + 1}: {which}, {count:,} klines")
            if which == "bare":
                runs["bare"].append(bare(klines, since, until))
                continue
            klines.delete_many({"symbol": SYMBOL})
            seconds, peak = backfill(env, since, until)
            runs["backfill"].append(seconds)
            peaks.append(peak)
    rate = {k: [count / s for s in v] for k, v in runs.items()}
    ratio = max(rate["backfill"]) / max(rate["bare"])
    peak_mb = max(peaks) / 1e6
    outcome = Outcome("import", {"klines": count, "seconds": runs, "klines_per_s": rate, "ratio": ratio,
                                 "peak_rss_mb": peak_mb})  # fmt: skip
    span = f"{count:,} x 1m ({options.import_months} month(s)), {options.import_rounds} round(s)"
    for which, label in (("backfill", "backfill_klines, archive files"), ("bare", "bare insert_many (baseline)")):
        figures = f"{fmt(max(rate[which]))} klines/s ({', '.join(fmt(s) for s in runs[which])} s)"
        outcome.rows.append(("archive import", label, figures, span))
    outcome.rows.append(("archive import", "ratio, peak RSS", f"{ratio:.2f}, {fmt(peak_mb)} MB", "backfill process"))
    outcome.targets += [
        check("import: backfill_klines / bare insert_many klines/s", ratio, ">=", 0.8, "best round of each"),
        check("import: backfill_klines peak RSS MB", peak_mb, "<=", 300),
    ]
    return outcome
