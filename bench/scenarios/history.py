"""Scenario history: 1,500-kline pages of ``GET /fapi/v1/klines`` from a record of a million klines.

Seeded by :mod:`bench.bulkseed`; three daphnes serve it: (a) the service, (b) the same with
``KLINE_BLOCKS=false`` (pages read kline by kline), (c) the plain ORM view
(:mod:`bench.history_baseline`). The service builds its blocks as in production: its own
sweep, started by the first page, while no page is asked (timed). Then pages one at a
time, pages that repeat (:class:`bench.history_pages.PagedPages`) on the service, and
random pages by the concurrent clients on all three, rounds rotated.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.history_pages import MINUTE_MS, PAGE, Client, HttpError, PagedPages, Pages
from bench.options import Options
from bench.report import check, fmt, latency_summary
from bench.scenarios import RECORD_SYMBOLS as SYMBOLS
from bench.scenarios import Outcome, record_env, seed_record
from bench.stack import Stack, cpu_seconds

DATABASE = "bench_history"
TIMEOUT = 600.0  # one page alone; the plain ORM scans the whole collection for it
BLOCK_ROWS = 500  # klines.api.blocks.BLOCK_ROWS (importing it needs Django set up)
SWEEP_TIMEOUT = 1800.0  # the sweep built 1,980 blocks of 1M klines in 260 s at load 8-9
LABELS = {"service": "a service (blocks, own read threads)", "noblocks": "b service, KLINE_BLOCKS=false",
          "orm": "c plain ORM view (baseline)", "paged": "a service, pages that repeat (kept encoded)"}  # fmt: skip


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds per page answered
    unfinished: list[float] = field(default_factory=list)  # seconds waited for pages cut off at the end
    errors: int = 0
    first_error: str = ""
    wall: float = 0.0
    server_cpu: float = 0.0  # daphne's
    mongo_cpu: float = 0.0  # SecantusDB's


async def load(
    port: int, pages: Callable[[], str], *, clients: int, seconds: float, grace: float, daphne, mongo
) -> LoadResult:
    """``clients`` keep-alive clients asking for pages back to back; new pages stop after ``seconds`` (or when
    ``pages()`` gives None), pages still unanswered ``grace`` later are cut off and reported as lower bounds."""
    result = LoadResult()
    began = time.monotonic()
    stop_at, cut_at = began + seconds, began + seconds + grace

    async def client() -> None:
        http = Client(port, timeout=TIMEOUT)
        try:
            while (asked := time.monotonic()) < stop_at and (target := pages()) is not None:
                try:
                    await http.get(target, within=cut_at - asked)
                except TimeoutError:
                    result.unfinished.append(time.monotonic() - asked)
                    return
                except Exception as exc:  # counted, reported; the load goes on
                    result.errors += 1
                    result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                    continue
                result.latencies.append(time.monotonic() - asked)
        finally:
            await http.close()

    cpu_before = cpu_seconds(daphne), cpu_seconds(mongo)
    await asyncio.gather(*(client() for _ in range(clients)))
    result.wall = time.monotonic() - began
    result.server_cpu = cpu_seconds(daphne) - cpu_before[0]
    result.mongo_cpu = cpu_seconds(mongo) - cpu_before[1]
    return result


def wait_idle(process, *, busy: float = 0.1, timeout: float = 300.0) -> None:
    """Until ``process`` uses less than ``busy`` of a core over half a second (a cut-off query has ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(process)
        time.sleep(0.5)
        if cpu_seconds(process) - before < busy * 0.5:
            return


def complete_blocks(first_open_ms: int, minutes: int) -> int:
    """How many aligned blocks of one-minute klines a record of ``minutes`` from ``first_open_ms`` fills."""
    span = BLOCK_ROWS * MINUTE_MS
    return len(SYMBOLS) * ((first_open_ms + minutes * MINUTE_MS) // span - -(-first_open_ms // span))


def wait_for_blocks(stack: Stack, daphne, expected: int) -> dict[str, float]:
    """Until the service's sweep has stored ``expected`` blocks (or :data:`SWEEP_TIMEOUT`); its time and CPU."""
    assert stack.mongo is not None
    blocks = stack.klines(DATABASE).database["kline_blocks"]
    began, cpu = time.monotonic(), (cpu_seconds(daphne), cpu_seconds(stack.mongo.process))
    while (built := blocks.estimated_document_count()) < expected and time.monotonic() - began < SWEEP_TIMEOUT:
        time.sleep(1.0)
    out = {"blocks": built, "expected": expected, "seconds": time.monotonic() - began}
    out["daphne_cpu_s"] = cpu_seconds(daphne) - cpu[0]
    return out | {"secantus_cpu_s": cpu_seconds(stack.mongo.process) - cpu[1]}


async def alone(clients: dict[str, Client], target: str, orm_limit: float, single: dict[str, list[float]]) -> dict:
    """``target`` asked of each server in turn, one at a time; the ORM's once its pages took ``orm_limit``."""
    bodies = {}
    for key, http in clients.items():
        if key == "orm" and sum(single[key]) > orm_limit:
            continue
        began = time.monotonic()
        try:
            try:
                bodies[key] = await http.get(target)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                # daphne closed the keep-alive connection while the other server's page took minutes
                began = time.monotonic()
                await http.close()
                bodies[key] = await http.get(target)
        except (OSError, asyncio.IncompleteReadError, HttpError):
            if key != "orm":
                raise
            # daphne gave up on the ORM's page (a loaded machine): its wait is a lower bound.
        single[key].append(time.monotonic() - began)
    return bodies


async def run(stack: Stack, options: Options, progress: Callable[[str], None]) -> Outcome:
    assert stack.mongo is not None
    env = record_env(stack, DATABASE)
    stack.prepare_database(env)
    minutes, seeded, seeding, seeding_row = seed_record(stack, DATABASE, options.history_klines, progress)
    first_open_ms = seeded.first_open_ms
    orm = {**env, "DJANGO_SETTINGS_MODULE": "bench.history_baseline"}
    envs = {"service": env, "noblocks": {**env, "KLINE_BLOCKS": "false"}, "orm": orm}
    servers = {key: stack.daphne(f"history-{key}", envs[key]) for key in envs}
    mongo = stack.mongo.process
    clients = {k: Client(port, timeout=TIMEOUT) for k, (_, port) in servers.items()}
    await clients["service"].get(Pages(SYMBOLS, first_open_ms, minutes, seed=1)())  # starts the sweep
    expected = complete_blocks(first_open_ms, minutes)
    sweep = await asyncio.to_thread(wait_for_blocks, stack, servers["service"][0], expected)
    progress(f"history: {sweep['blocks']:,} of {sweep['expected']:,} blocks built in {sweep['seconds']:.0f} s")

    # One page alone, servers interleaved; the first page is compared: the same bytes from all, and a full page.
    single: dict[str, list[float]] = {k: [] for k in servers}
    pages_alone = Pages(SYMBOLS, first_open_ms, minutes, seed=2)
    first = [
        await alone(clients, pages_alone(), options.history_seconds, single) for _ in range(options.history_single)
    ][0]
    for http in clients.values():
        await http.close()
    identical = len(set(first.values())) == 1  # the ORM's compared when it answered
    full = first["service"].count(b"],[") == PAGE - 1

    # The service with pages that repeat: each asked once (the warm-up, timed), then alone and by the clients.
    # Before the ORM's window, whose cut-off queries keep SecantusDB busy for minutes after it.
    grace = max(options.history_seconds, 30.0)
    paged = PagedPages(SYMBOLS, first_open_ms, minutes)
    process, port = servers["service"]
    loaded = functools.partial(load, seconds=options.history_seconds, grace=grace, mongo=mongo)
    each = functools.partial(next, iter(paged.all), None)
    warm = await loaded(port, each, clients=options.history_clients, seconds=TIMEOUT, daphne=process)
    some = functools.partial(next, iter([paged() for _ in range(options.history_single)]), None)
    single["paged"] = (await loaded(port, some, clients=1, seconds=TIMEOUT, daphne=process)).latencies
    results: dict[str, list[LoadResult]] = {k: [] for k in servers}
    results["paged"] = [await loaded(port, paged, clients=options.history_clients, daphne=process)]

    # Random pages by the concurrent clients, rounds rotated. Pages the ORM had not answered are still queued
    # in its daphne when a window ends: it is restarted, and SecantusDB allowed to finish the queries it is on.
    order = list(servers)
    pages = Pages(SYMBOLS, first_open_ms, minutes, seed=3)
    for round_no in range(options.history_rounds):
        shift = round_no % len(order)
        for key in order[shift:] + order[:shift]:
            process, port = servers[key]
            wait_idle(mongo)
            result = await loaded(port, pages, clients=options.history_clients, daphne=process)
            results[key].append(result)
            if result.unfinished:
                stack.stop(process)
                servers[key] = stack.daphne(f"history-{key}", envs[key])
            progress(f"history: {key}: {len(result.latencies)} pages, {len(result.unfinished)} cut off")
    return _outcome(options, seeded.klines, seeding, seeding_row, results, single, sweep, identical and full,
                    warm.wall, len(paged.all))  # fmt: skip


def _outcome(options, klines, seeding, seeding_row, results, single, sweep, same, warm_seconds, paged) -> Outcome:
    figures = {}
    for key, runs in results.items():
        latencies = [t for r in runs for t in r.latencies]
        unfinished = [t for r in runs for t in r.unfinished]
        wall = sum(r.wall for r in runs)
        pages_done = len(latencies) or math.nan  # no page answered: no CPU per page
        # The unfinished pages' waits count as lower bounds in the percentiles.
        f = {"label": LABELS[key], "alone": latency_summary(single[key]), **latency_summary(latencies + unfinished)}
        f |= {"pages": len(latencies), "unfinished": len(unfinished), "wall_s": wall}
        f |= {"pages_per_s": len(latencies) / wall if wall else 0.0, "errors": sum(r.errors for r in runs)}
        f |= {"daphne_cpu_ms_per_page": sum(r.server_cpu for r in runs) / pages_done * 1000}
        f |= {"secantus_cpu_ms_per_page": sum(r.mongo_cpu for r in runs) / pages_done * 1000}
        figures[key] = f | {"first_error": next((r.first_error for r in runs if r.first_error), "")}
    service, plain, orm, hot = (figures[k] for k in ("service", "noblocks", "orm", "paged"))
    # With pages cut off, the ORM's p99 is a lower bound, so this ratio is an upper bound; with no
    # page answered at all, one page per window is the ORM's upper bound, so the rate ratio is a lower one.
    orm_rate = max(orm["pages_per_s"], 1 / orm["wall_s"])
    ratios = {
        "p99_service_over_orm": service["p99_ms"] / orm["p99_ms"],
        "pages_per_s_service_over_orm": service["pages_per_s"] / orm_rate,
        "pages_per_s_paged_over_orm": hot["pages_per_s"] / orm_rate,
        "p99_blocks_over_noblocks": service["p99_ms"] / plain["p99_ms"],
        "pages_per_s_blocks_over_noblocks": service["pages_per_s"] / max(plain["pages_per_s"], 1 / plain["wall_s"]),
    }
    data = {**seeding, "page": PAGE, "clients": options.history_clients, "seconds_per_round": options.history_seconds}
    data |= {"bodies_identical_and_full": same, "sweep": sweep, "servers": figures, "ratios": ratios}
    data |= {"paged_pages": paged, "paged_warm_up_s": warm_seconds}
    outcome = Outcome("history", data)
    title = f"history ({klines:,} klines, pages of {PAGE})"
    outcome.rows.append((title, *seeding_row))
    blocks = f"{sweep['blocks']:,} of {sweep['expected']:,} in {sweep['seconds']:.1f} s"
    cpu = f"CPU daphne {sweep['daphne_cpu_s']:.1f} s, SecantusDB {sweep['secantus_cpu_s']:.1f} s"
    outcome.rows.append((title, "a service: blocks built by its sweep", blocks, cpu))
    for f in figures.values():
        bound = ">= " if f["unfinished"] else ""
        one = f"p50 {fmt(f['alone']['p50_ms'])} / max {fmt(f['alone']['max_ms'])} ms"
        outcome.rows.append((title, f"{f['label']}: one page alone", one, f"{f['alone']['count']} pages"))
        figures = (
            f"p50 {bound}{fmt(f['p50_ms'])} / p99 {bound}{fmt(f['p99_ms'])} ms, {fmt(f['pages_per_s'], 2)} pages/s"
        )
        notes = (
            f"{f['pages']} pages, {f['unfinished']} cut off; CPU per page: daphne {fmt(f['daphne_cpu_ms_per_page'])}"
        )
        notes += f", SecantusDB {fmt(f['secantus_cpu_ms_per_page'])} ms; {f['errors']} errors"
        subject = f"{f['label']}: {options.history_clients} clients"
        outcome.rows.append((title, subject, figures, notes + ("" if same else ", BODIES DIFFER OR SHORT")))
    outcome.rows.append((title, f"{LABELS['paged']}: warm-up", f"{warm_seconds:.1f} s", f"{paged} pages"))
    clients = options.history_clients
    outcome.targets = [
        check("history p99 service/ORM", ratios["p99_service_over_orm"], "<=", 1),
        check("history pages/s service/ORM", ratios["pages_per_s_service_over_orm"], ">=", 1),
        check("history p99 blocks/KLINE_BLOCKS=false", ratios["p99_blocks_over_noblocks"], "<=", 1),
        check(f"history p99, {clients} clients, pages that repeat (ms)", hot["p99_ms"], "<", 1000),
        check(f"history p99, {clients} clients, random pages (ms)", service["p99_ms"], "<", 1000),
        check("history pages identical and full (1 = yes)", float(same), ">=", 1),
    ]
    return outcome
