"""Scenarios fanout and scale: one close reaches 2,000 / 10,000 idle clients on 2 daphne + Redis.

The real ingest stores and publishes a close of BTCUSDT; each client's time runs from its
``stored_at`` to when the client's loop saw the frame; the clients live in
:data:`CLIENT_PROCESSES` load-client processes (``bench/scaleclient.py``). Every
client must connect, stay connected and get every close; daphne's CPU per close above
its idle rate, and its RSS before and with its clients (memory with Redis).
"""

from __future__ import annotations

import asyncio
import json
import math
import resource
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import psutil

from bench import load
from bench.options import Options
from bench.report import check, fmt, latency_summary
from bench.scenarios import SYMBOLS, Outcome
from bench.stack import Stack, cpu_seconds, exchange_call, rss, wait_for_streams
from klines.testing.servers import exchange_urls, wait_until

COIN = "BTCUSDT"
CLIENT_PROCESSES = 2
WAIT_SECONDS = 30.0
KIB = 1024
FD_MARGIN = 500  # files a daphne or a load client opens besides its clients' sockets
IDLE_CPU_SECONDS = 3.0
ANSWER_BYTES = 2**26  # a load client answers with every arrival time on one line


class ClientProcess:
    """One ``bench.scaleclient`` process: a JSON line per command on its stdin, one answer per line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, stack: Stack, name: str, ports: list[int], count: int, concurrency: int) -> ClientProcess:
        log = open(stack.logs / f"{name}.log", "ab")  # noqa: SIM115, ASYNC230 - the child owns it; a local file
        args = ["-m", "bench.scaleclient", "--ports", ",".join(map(str, ports)), "--count", str(count)]
        args += ["--concurrency", str(concurrency)]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            limit=ANSWER_BYTES,
        )
        log.close()
        return cls(process)

    async def answer(self, time_limit: float = 120.0) -> dict:
        line = await asyncio.wait_for(self.process.stdout.readline(), time_limit)
        if not line:
            raise RuntimeError(f"load client {self.process.pid} exited ({self.process.returncode}); see its log")
        return json.loads(line)

    async def ask(self, command: str, time_limit: float = 120.0) -> dict:
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return await self.answer(time_limit)

    def cpu(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    async def stop(self) -> None:
        if self.process.returncode is None:
            try:
                await self.ask("quit", time_limit=60)
                await asyncio.wait_for(self.process.wait(), 10)
            except (TimeoutError, RuntimeError, ValueError, BrokenPipeError, ConnectionResetError):
                self.process.kill()
                await self.process.wait()


async def run(
    stack: Stack, options: Options, redis_url: str, *, name: str = "scale", total: int = 0, goal_ms: float = 250
) -> Outcome:
    """A close to ``total`` (``scale_clients``) idle clients; the ``fanout`` scenario is this at ``idle`` clients."""
    total = total or options.scale_clients
    database = f"bench_{name}"
    _check_open_files(math.ceil(total / min(options.daphnes, CLIENT_PROCESSES)) + FD_MARGIN)
    env = stack.env(database, REDIS_URL=redis_url)
    stack.prepare_database(env, symbols=SYMBOLS, count=30)
    daphnes = [stack.daphne(f"{name}-daphne-{i}", env) for i in range(options.daphnes)]
    ports = [port for _, port in daphnes]
    _, exchange_port = stack.exchange(f"{name}-exchange", SYMBOLS, env)
    stack.ingest(f"{name}-ingest", {**env, **exchange_urls(exchange_port)}, SYMBOLS)
    await asyncio.to_thread(wait_for_streams, exchange_port, 1)
    daphne_limits = [psutil.Process(p.pid).rlimit(psutil.RLIMIT_NOFILE)[0] for p, _ in daphnes]

    for port in ports:  # load the feed, warm the code paths (as the memory scenario does)
        await load.storm(port, connections=200, concurrency=20)
    await asyncio.sleep(2.0)
    rss_before = [rss(p) for p, _ in daphnes]
    counts = [total // CLIENT_PROCESSES + (i < total % CLIENT_PROCESSES) for i in range(CLIENT_PROCESSES)]
    clients = [
        await ClientProcess.start(stack, f"{name}-clients-{i}", ports, n, options.concurrency)
        for i, n in enumerate(counts)
    ]
    collection = stack.klines(database)
    try:
        opened = await asyncio.gather(*(c.answer(time_limit=600) for c in clients))
        await asyncio.sleep(2.0)
        rss_held = [rss(p) for p, _ in daphnes]
        idle_cpu = [cpu_seconds(p) for p, _ in daphnes]
        began = time.monotonic()
        await asyncio.sleep(IDLE_CPU_SECONDS)  # what the daphnes spend with no close (polls, pings)
        idle_rate = sum(cpu_seconds(p) for p, _ in daphnes) - sum(idle_cpu)
        idle_rate /= time.monotonic() - began

        async def one_close() -> tuple[dict, list[float]]:
            await asyncio.gather(*(c.ask("arm") for c in clients))
            cpu_clients = [c.cpu() for c in clients]
            cpu_daphnes = [cpu_seconds(p) for p, _ in daphnes]
            window = time.monotonic()
            sent = await asyncio.to_thread(exchange_call, exchange_port, f"/bench/close?symbols={COIN}")
            open_time = datetime.fromtimestamp(sent["open_ms"][COIN] / 1000, tz=UTC)
            query = {"symbol": COIN, "interval": "1m", "open_time": open_time}
            what = f"the ingest to store {COIN} {open_time}"
            stored = await asyncio.to_thread(wait_until, lambda: collection.find_one(query), timeout=10, what=what)
            close = float(Decimal(str(stored["close"])))
            answers = await asyncio.gather(*(c.ask(f"wait {close!r} {WAIT_SECONDS}", time_limit=120) for c in clients))
            cpu_clients = [c.cpu() - before for c, before in zip(clients, cpu_clients, strict=True)]
            cpu_daphnes = [cpu_seconds(p) - before for (p, _), before in zip(daphnes, cpu_daphnes, strict=True)]
            window = time.monotonic() - window
            stored_at = stored["stored_at"].timestamp()
            got = [t - stored_at for a in answers for _, t in a["arrivals"]]
            per_daphne = [
                latency_summary([t - stored_at for a in answers for p, t in a["arrivals"] if p == port])["p99_ms"]
                for port in ports
            ]
            summary = {
                "received": len(got),
                "missing": sum(a["missing"] for a in answers),
                "dropped": sum(a["dropped"] for a in answers),
                "extra_frames": sum(a["extra_frames"] for a in answers),
                "exchange_to_stored_ms": (stored_at - sent["sent_at"]) * 1000,
                "cpu_clients_s": cpu_clients,
                "cpu_daphnes_s": cpu_daphnes,
                "cpu_daphnes_above_idle_s": sum(cpu_daphnes) - idle_rate * window,
                "window_s": window,
                "p99_ms_per_daphne": per_daphne,
                **latency_summary(got),
            }
            await asyncio.sleep(1.0)
            return summary, got

        first, _ = await one_close()  # one-off costs after start-up; reported apart
        rounds, latencies = [], []
        for _ in range(options.fanout_rounds):
            summary, got = await one_close()
            rounds.append(summary)
            latencies += got
    finally:
        await asyncio.gather(*(c.stop() for c in clients))

    connected = sum(o["opened"] for o in opened)
    refused = sum(o["refused"] for o in opened)
    missing = sum(r["missing"] for r in rounds)
    dropped = max((r["dropped"] for r in rounds), default=0)
    per_daphne = [connected / len(daphnes)] * len(daphnes)
    kib = [(h - b) / n / KIB for h, b, n in zip(rss_held, rss_before, per_daphne, strict=True)]
    summary = latency_summary(latencies)
    cpu_clients = [sum(r["cpu_clients_s"]) for r in rounds]
    cpu_daphnes = [r["cpu_daphnes_above_idle_s"] for r in rounds]
    outcome = Outcome(
        name,
        {
            "clients": total,
            "connected": connected,
            "refused": refused,
            "first_error": next((o["first_error"] for o in opened if o["first_error"]), ""),
            "dropped": dropped,
            "missing": missing,
            "daphne_processes": len(daphnes),
            "client_processes": CLIENT_PROCESSES,
            "open_files_limit": {"clients": [o["open_files_limit"] for o in opened], "daphnes": daphne_limits},
            "connect_seconds": max(o["seconds"] for o in opened),
            "rss_before_mib": [b / 2**20 for b in rss_before],
            "rss_held_mib": [h / 2**20 for h in rss_held],
            "per_connection_kib_with_redis": kib,
            "daphnes_idle_cpu_cores": idle_rate,
            "rounds": rounds,
            "first_close_after_start": first,
            **summary,
        },
    )
    clients_ms = [c * 1000 for c in cpu_clients]
    daphnes_ms = [c * 1000 for c in cpu_daphnes]
    outcome.rows.append(
        (
            f"{name} ({total:,} idle clients, {len(daphnes)} daphne + Redis, {len(rounds)} closes)",
            "stored -> client has the frame",
            f"p50 {fmt(summary['p50_ms'])} / p99 {fmt(summary['p99_ms'])} / max {fmt(summary['max_ms'])} ms",
            f"{refused} refused, {dropped} dropped, {missing} missed; CPU per close: daphnes (above idle) "
            f"{fmt(sum(daphnes_ms) / max(len(rounds), 1))} ms, {CLIENT_PROCESSES} clients "
            f"{fmt(sum(clients_ms) / max(len(rounds), 1))} ms; first close (not counted) max {fmt(first['max_ms'])} ms",
        )
    )
    outcome.rows.append(
        (
            f"memory with Redis ({fmt(per_daphne[0], 0)} idle clients per daphne)",
            "RSS growth per connection",
            " / ".join(f"{fmt(k)}" for k in kib) + " KiB",
            f"RSS {' / '.join(fmt(h / 2**20) for h in rss_held)} MiB with the clients; fd limit {daphne_limits}",
        )
    )
    p99 = summary["p99_ms"] if not (missing or refused or dropped) else math.nan
    outcome.targets = [
        check(f"close to {total:,} clients, p99 (ms)", p99, "<", goal_ms),
        check(f"clients refused, dropped or missing a close (of {total:,})", refused + dropped + missing, "<=", 0),
    ]
    return outcome


def _check_open_files(needed: int) -> None:
    """Every process inherits the bench's soft limit (raised to the hard one); say what to set if it is short."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise RuntimeError(
            f"{needed:,} open files needed per process, the limit is {soft:,}: raise the hard limit "
            f"(ulimit -Hn {needed} as root, LimitNOFILE={needed} under systemd, nofile in /etc/security/limits.conf)"
        )
