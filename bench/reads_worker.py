"""The store's reads timed in one process: Django's model (the baseline) against :class:`KlineRecord` rows.

Run by :mod:`bench.scenarios.reads` with the service's environment; the baseline is
the store's own reads with documents built into ``Kline`` instances
(:func:`model_reads`). Subjects alternate, order rotated; CPU is this thread's and
SecantusDB's. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from types import SimpleNamespace
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binancews.settings")
django.setup()

import psutil  # noqa: E402

from klines.api.rows import kline_row  # noqa: E402
from klines.binance.parse import ms_to_datetime  # noqa: E402
from klines.models import Kline  # noqa: E402
from klines.serving.feed import POLL_BATCH, REREAD_MARGIN, SWEEP_SYMBOLS_PER_POLL  # noqa: E402
from klines.store import reads  # noqa: E402
from klines.window import HISTORY  # noqa: E402

PAGE = 1500
SUBJECTS = ("model", "records")


def _models(pipeline: list[dict[str, Any]]) -> list[Kline]:
    return list(Kline.objects.raw_aggregate(pipeline))


@contextmanager
def subject(name: str) -> Iterator[None]:
    """``model``: the store's reads as they were before, the same pipelines, each document a ``Kline`` instance."""
    original = reads._records
    reads._records = _models if name == "model" else original
    try:
        yield
    finally:
        reads._records = original


def page_body(symbol: str, start_ms: int) -> str:
    """What ``GET /fapi/v1/klines?...&startTime=..&limit=1500`` reads and encodes (klines/api/views.py)."""
    start = ms_to_datetime(start_ms)
    rows = reads.klines_page(symbol, "1m", start=start, end=datetime.now(UTC), limit=PAGE)
    return json.dumps([kline_row(k) for k in rows], separators=(",", ":"))


def next_page(pages: Iterator[tuple[str, int]]) -> str:
    return page_body(*next(pages))


def poll(since, sweep: list[str]) -> list:
    """The feed's reconcile poll: what was stored since ``since`` (1,000 at most), then a few symbols' newest."""
    rows, _, _ = reads.klines_stored_since(since, None, None, POLL_BATCH)
    for symbol in sweep:
        rows += reads.last_klines(symbol, "1m", HISTORY)
    return rows


def timed(work: Callable[[], Any], count: int, mongo: psutil.Process) -> dict[str, float]:
    """Per-call thread CPU, wall time and SecantusDB CPU (ms) over ``count`` calls."""
    mongo_before = sum(mongo.cpu_times()[:2])
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(count):
        work()
    return {
        "cpu_ms": (time.thread_time() - cpu) * 1000 / count,
        "wall_ms": (time.perf_counter() - wall) * 1000 / count,
        "mongo_cpu_ms": (sum(mongo.cpu_times()[:2]) - mongo_before) * 1000 / count,
    }


def main() -> None:
    """The arguments come as one JSON object: page_symbols, poll_symbols, first_open_ms, minutes, rounds, pages,
    polls, mongo_pid."""
    args = SimpleNamespace(**json.loads(sys.argv[1]))
    page_symbols, poll_symbols = args.page_symbols, args.poll_symbols
    mongo = psutil.Process(args.mongo_pid)
    newest = reads.newest_stored_at()
    assert newest is not None, "nothing stored"
    since = newest - REREAD_MARGIN
    sweep = poll_symbols[:SWEEP_SYMBOLS_PER_POLL]

    # The same bytes from both: one page's body, and one poll's rows as the mirror would write them.
    bodies, polled = {}, {}
    for name in SUBJECTS:
        with subject(name):
            bodies[name] = page_body(page_symbols[0], args.first_open_ms)
            polled[name] = json.dumps([kline_row(k) for k in poll(since, sweep)])
    identical = bodies["model"] == bodies["records"] and polled["model"] == polled["records"]
    page_rows = len(json.loads(bodies["records"]))
    poll_rows = len(json.loads(polled["records"]))

    results: dict[str, dict[str, list[dict[str, float]]]] = {n: {"page": [], "poll": []} for n in SUBJECTS}
    rng = random.Random(16)
    for round_ in range(args.rounds):
        starts = [
            (rng.choice(page_symbols), args.first_open_ms + rng.randrange(args.minutes - PAGE + 1) * 60_000)
            for _ in range(args.pages)
        ]
        order = SUBJECTS[round_ % 2 :] + SUBJECTS[: round_ % 2]
        for name in order:
            with subject(name):
                results[name]["page"].append(timed(partial(next_page, iter(starts)), args.pages, mongo))
                results[name]["poll"].append(timed(partial(poll, since, sweep), args.polls, mongo))

    def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
        return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}

    summary = {name: {kind: medians(rounds) for kind, rounds in per_kind.items()} for name, per_kind in results.items()}
    out = {"identical": identical, "page_rows": page_rows, "poll_rows": poll_rows, "rounds": results}
    print(json.dumps({**out, "median": summary}))


if __name__ == "__main__":
    main()
