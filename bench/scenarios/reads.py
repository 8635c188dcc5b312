"""Scenario reads (issue 16): the store's reads with and without Django's model, in one process.

A 1,500-kline history page (read, rows, JSON) and a reconcile poll, through ``Kline``
instances and through :class:`~klines.store.records.KlineRecord` tuples
(:mod:`bench.reads_worker`), rounds interleaved; a page and a poll compared byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from bench import bulkseed
from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import RECORD_SYMBOLS as PAGE_SYMBOLS
from bench.scenarios import Outcome
from bench.scenarios.burst import burst_symbols
from bench.stack import Stack

DATABASE = "bench_reads"
INTERVAL = "1m"
POLL_SYMBOLS = 500  # the relay's and issue 16's scale: one minute's closes of 500 symbols in each poll
POLL_MINUTES = 20  # their record: enough for the sweep's newest 11
GOAL = 0.5  # the history profile's estimate: the model and Decimal128 conversion are about half the CPU


def sizes(options: Options) -> dict[str, int]:
    """Record and repetitions: (page symbols, their minutes, pages and polls per subject and round, rounds)."""
    if options.quick:
        return {"page_symbols": 4, "minutes": 2_000, "pages": 5, "polls": 10, "rounds": options.reads_rounds}
    return {"page_symbols": 20, "minutes": 3_000, "pages": 10, "polls": 20, "rounds": options.reads_rounds}


async def run(stack: Stack, options: Options, progress: Callable[[str], None]) -> Outcome:
    assert stack.mongo is not None
    size = sizes(options)
    env = stack.env(DATABASE)
    stack.manage(["migrate", "--noinput", "-v0"], env)
    now = datetime.now(UTC)
    page_symbols = [s.upper() for s in PAGE_SYMBOLS[: size["page_symbols"]]]
    poll_symbols = [s.upper() for s in burst_symbols(POLL_SYMBOLS)]
    pages = bulkseed.seed(
        stack.mongo.uri, DATABASE, "klines", symbols=page_symbols, interval=INTERVAL, minutes=size["minutes"], now=now
    )
    polls = bulkseed.seed(
        stack.mongo.uri, DATABASE, "klines", symbols=poll_symbols, interval=INTERVAL, minutes=POLL_MINUTES, now=now
    )
    progress(f"reads: seeded {polls.klines:,} klines in {pages.seconds + polls.seconds:.0f} s; timing")
    args = {"page_symbols": page_symbols, "poll_symbols": poll_symbols, "first_open_ms": pages.first_open_ms}
    args |= {k: size[k] for k in ("minutes", "rounds", "pages", "polls")} | {"mongo_pid": stack.mongo.process.pid}
    data = json.loads(stack.python("bench.reads_worker", [json.dumps(args)], env, timeout=1800))
    data.update(sizes=size, klines=polls.klines, seed_seconds=pages.seconds + polls.seconds)
    median = data["median"]
    ratios = {kind: median["records"][kind]["cpu_ms"] / median["model"][kind]["cpu_ms"] for kind in ("page", "poll")}
    data["cpu_ratio"] = ratios

    outcome = Outcome("reads", data)
    what = {
        "page": f"a history page ({data['page_rows']:,} klines: read, rows, JSON)",
        "poll": f"a reconcile poll ({data['poll_rows']} klines: one minute's closes + the sweep)",
    }
    for kind in ("page", "poll"):
        for name, label in (("model", "a Kline model (baseline)"), ("records", "b KlineRecord (the store)")):
            m = median[name][kind]
            figures = f"CPU {fmt(m['cpu_ms'], 2)} ms, wall {fmt(m['wall_ms'], 2)} ms"
            notes = f"SecantusDB CPU {fmt(m['mongo_cpu_ms'], 2)} ms; medians of {size['rounds']} rounds"
            outcome.rows.append((f"reads: {what[kind]}" if name == "model" else "", label, figures, notes))
    same = "identical" if data["identical"] else "DIFFERENT"
    outcome.rows.append(("", "bytes", f"page body and poll rows {same}", f"{data['klines']:,} klines stored"))
    outcome.targets = [
        check(f"reads: CPU per {kind}, KlineRecord / model", ratios[kind], "<=", GOAL, "reader's thread, same run")
        for kind in ("page", "poll")
    ]
    outcome.targets.append(check("reads: bodies identical (1 = yes)", float(data["identical"]), ">=", 1))
    return outcome
