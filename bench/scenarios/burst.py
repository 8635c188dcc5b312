"""Scenario burst: 1,000 symbols close in the same second.

One real ``ingest_klines`` per combined stream of ``per_stream`` symbols (publishing
to Redis), each past its start-up backfill. The clock runs from the first close sent
to the 50 ms poll that sees all stored (an upper bound; the newest ``stored_at`` is
the lower). ``burst_rounds`` bursts, judged on their p90. After each, its documents
go again through one bare ordered ``insert_many`` (:func:`timed_insert`, as shadows no
ingest records, so the unique index sees no duplicate): SecantusDB's share.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from bson import ObjectId
from pymongo.collection import Collection

from bench.options import Options
from bench.report import check, distribution, fmt
from bench.scenarios import Outcome
from bench.stack import Stack, exchange_call, wait_for_streams
from klines.testing.servers import exchange_urls

DATABASE = "bench_burst"
POLL_SECONDS = 0.05
WAIT_SECONDS = 120.0
SETTLE_SECONDS = 2.0  # nothing stored for this long: the start-up backfill is over
SETTLE_TIMEOUT = 180.0
# The bench exchange does not rate-limit REST, so the ingest need not pace its
# start-up backfill at Binance's weight budget (at 1,200 a minute, 1,000
# symbols take 50 s).
UNPACED_REST_WEIGHT = "1000000"
SHADOW = "X"


def burst_symbols(count: int) -> list[str]:
    return [f"s{i:04d}usdt" for i in range(count)]


def wait_until_settled(collection: pymongo.collection.Collection) -> int:
    """Wait until nothing new has been stored for :data:`SETTLE_SECONDS`; return how many are stored."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    count, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_count = collection.estimated_document_count()
        if now_count != count:
            count, quiet_since = now_count, time.monotonic()
        elif count > 0 and time.monotonic() - quiet_since >= SETTLE_SECONDS:
            return count
        time.sleep(0.25)
    raise TimeoutError(f"the ingest's start-up backfill did not finish in {SETTLE_TIMEOUT:.0f}s ({count} stored)")


def shadow_documents(documents: Iterable[dict[str, Any]], stored_at: datetime) -> list[dict[str, Any]]:
    """The documents as new ones: fresh ``_id``, ``stored_at``, and a symbol no ingest records."""
    return [
        {**doc, "_id": ObjectId(), "symbol": SHADOW + doc["symbol"][1:], "stored_at": stored_at} for doc in documents
    ]


def timed_insert(collection: Collection, query: dict[str, Any], *, ordered: bool = True) -> tuple[float, int]:
    """Insert the documents ``query`` finds again as shadows; (seconds the ``insert_many`` took, documents)."""
    documents = shadow_documents(collection.find(query), datetime.now(UTC))
    began = time.perf_counter()
    collection.insert_many(documents, ordered=ordered)
    return time.perf_counter() - began, len(documents)


async def run(stack: Stack, options: Options, redis_url: str) -> Outcome:
    env = stack.env(DATABASE, REDIS_URL=redis_url)
    stack.prepare_database(env)
    symbols = burst_symbols(options.burst_symbols)
    streams = [symbols[i : i + options.per_stream] for i in range(0, len(symbols), options.per_stream)]
    _, exchange_port = stack.exchange("burst-exchange", symbols, env)
    ingest_env = {**env, **exchange_urls(exchange_port), "BINANCE_REST_WEIGHT_PER_MINUTE": UNPACED_REST_WEIGHT}
    for number, chunk in enumerate(streams):
        stack.ingest(f"burst-ingest-{number}", ingest_env, chunk)
    await asyncio.to_thread(wait_for_streams, exchange_port, len(streams))

    collection = stack.klines(DATABASE)
    backfilled = await asyncio.to_thread(wait_until_settled, collection)
    bursts = []
    for _ in range(options.burst_rounds):
        bursts.append(await _one_burst(collection, exchange_port, streams))
        query = bursts[-1].pop("query")
        if not bursts[-1]["complete"]:
            break
        # The same documents again, bare, while the ingests keep receiving their updates as in the burst.
        seconds, inserted = await asyncio.to_thread(timed_insert, collection, query)
        bursts[-1] |= {"bare_insert_s": seconds, "bare_inserted": inserted}
        await asyncio.sleep(SETTLE_SECONDS)

    complete = all(b["complete"] for b in bursts)
    seen = [b["all_stored_seen_s"] for b in bursts]
    newest = [b["newest_stored_at_s"] for b in bursts]
    spread = distribution(seen, 1.0) if complete else distribution([], 1.0)
    bare = [b["bare_insert_s"] for b in bursts if "bare_insert_s" in b]
    share = [b / s for b, s in zip(bare, seen, strict=False)]  # SecantusDB's part: bare insert / burst
    over = [s / b for b, s in zip(bare, seen, strict=False)]
    data = {"symbols": len(symbols), "streams": len(streams), "backfilled_before": backfilled, "complete": complete}
    data |= {"distribution": spread, "bare_insert_s": bare, "burst_over_bare": over, "secantus_share": share}
    data |= {"all_stored_seen_s": seen, "newest_stored_at_s": newest, "bursts": bursts}
    outcome = Outcome("burst", data)
    title = (
        f"ingest burst ({len(symbols)} closes, {len(streams)} streams of {options.per_stream}, {len(bursts)} bursts)"
    )
    if complete:
        figures = (
            f"min {fmt(spread['min_s'], 2)} / p50 {fmt(spread['p50_s'], 2)} / p90 {fmt(spread['p90_s'], 2)} / "
            f"max {fmt(spread['max_s'], 2)} s; {spread['under_limit']} of {len(seen)} under 1 s "
            f"(each: {', '.join(fmt(x, 2) for x in seen)} s)"
        )
        notes = f"newest stored_at (lower bound): median {fmt(statistics.median(newest), 2)} s; SecantusDB, Redis"
    else:
        figures = f"only {bursts[-1]['stored']} of {len(symbols)} stored in {WAIT_SECONDS:.0f} s"
        notes = "incomplete"
    outcome.rows.append((title, "exchange sends -> all stored", figures, notes))
    if bare:
        figures = f"min {fmt(min(bare), 2)} / p50 {fmt(statistics.median(bare), 2)} / max {fmt(max(bare), 2)} s "
        figures += f"(each: {', '.join(fmt(x, 2) for x in bare)} s)"
        notes = f"burst / bare: median {fmt(statistics.median(over), 2)}; SecantusDB's part (bare / burst): median "
        notes += f"{statistics.median(share):.0%} ({', '.join(f'{x:.0%}' for x in share)}); one ordered insert_many"
        outcome.rows.append(
            ("", f"bare insert_many of the same {len(symbols)} documents, after each burst", figures, notes)
        )
    outcome.targets = [check(f"burst of {len(symbols)} closes stored, p90 of {len(seen)} (s)", spread["p90_s"], "<", 1)]
    return outcome


async def _one_burst(collection: pymongo.collection.Collection, exchange_port: int, streams: list[list[str]]) -> dict:
    """Close the next kline of every symbol at once; time until all are stored."""
    count = sum(len(chunk) for chunk in streams)
    sent = await asyncio.to_thread(exchange_call, exchange_port, "/bench/close?symbols=*")
    open_times = {datetime.fromtimestamp(ms / 1000, tz=UTC) for ms in sent["open_ms"].values()}
    since = datetime.fromtimestamp(sent["sent_at"], tz=UTC) - timedelta(seconds=1)
    # One range on one index: cheap to poll. The previous burst was stored over SETTLE_SECONDS before ``since``.
    recent = {"stored_at": {"$gte": since}}
    query = {**recent, "open_time": {"$in": sorted(open_times)}}
    deadline = time.monotonic() + WAIT_SECONDS
    stored, seen_all, polls = 0, float("nan"), []
    while time.monotonic() < deadline:
        poll_start = time.time()
        stored = await asyncio.to_thread(collection.count_documents, recent)
        polls.append((round(poll_start - sent["sent_at"], 3), round(time.time() - poll_start, 3), stored))
        if stored >= count:
            seen_all = time.time() - sent["sent_at"]
            stored = await asyncio.to_thread(collection.count_documents, query)  # and they are this burst's
            if stored >= count:
                break
        await asyncio.sleep(POLL_SECONDS)
    newest = await asyncio.to_thread(collection.find_one, query, sort=[("stored_at", -1)])
    await asyncio.sleep(SETTLE_SECONDS)  # let the publishing and the next partial updates pass
    out = {"query": query, "stored": stored, "complete": stored >= count, "all_stored_seen_s": seen_all}
    out |= {"newest_stored_at_s": newest["stored_at"].timestamp() - sent["sent_at"] if newest else float("nan")}
    return out | {"send_seconds": sent["done_at"] - sent["sent_at"], "polls": polls}
