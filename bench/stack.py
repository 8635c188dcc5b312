"""Start and stop everything a benchmark needs, on free 127.0.0.1 ports.

The service is driven through its public interfaces only (``manage.py``
commands, the ``daphne`` command line, environment variables), so the
benchmarks keep working while its insides change.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil
import pymongo
from pymongo.collection import Collection

from klines.testing.servers import (
    ROOT,
    RedisServer,
    SecantusServer,
    daphne_argv,
    free_port,
    service_env,
    start_listening,
    stop_process,
    uvicorn_argv,
    wait_until,
)

BASELINES = [sys.executable, "-m", "bench.baselines"]
MAX_URL_BYTES = 65536  # the scripted exchange's request-line limit: 1,024 streams in one URL fit
SEED = """
import time
from klines.binance.parse import parse_rest_row
from klines.models import Kline
from klines.simexchange.series import KlineSeries
series = KlineSeries(interval="1m", interval_ms=60_000)
now = series.index_at(int(time.time() * 1000))
Kline.objects.bulk_create(
    Kline(**parse_rest_row(series.kline(s, i).rest_row(), symbol=s, interval="1m").as_fields())
    for s in SYMBOLS for i in range(now - COUNT, now)
)
"""
# Benchmark processes run as in production: no DEBUG query log, no per-event logging.
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "benchmark-only-secret-key-not-for-production",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "KLINES_LOG_LEVEL": "WARNING",
}


class Stack:
    """Owns every process it starts and stops them all, newest first."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._processes: list[subprocess.Popen] = []
        self.mongo: SecantusServer | None = None
        self.redis: RedisServer | None = None
        self._client: pymongo.MongoClient | None = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all_but_infrastructure()
        if self._client is not None:
            self._client.close()
        for server in (self.redis, self.mongo):
            if server is not None:
                server.stop()
        self.mongo = self.redis = None

    def stop_all_but_infrastructure(self) -> None:
        """Stop the servers of one scenario; SecantusDB and Redis stay up for the next."""
        while self._processes:
            self.stop(self._processes[-1])

    def stop(self, process: subprocess.Popen) -> None:
        stop_process(process)
        self._processes = [p for p in self._processes if p is not process]

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(args, cwd=ROOT, env=dict(env) if env else None, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._processes.append(process)
        return process

    def serve(
        self, name: str, argv: Callable[[int], list[str]], env: Mapping[str, str] | None = None, *, cwd: Path = ROOT
    ) -> tuple[subprocess.Popen, int]:
        """``argv(port)`` on a free port, logged as ``name``; returns once it listens."""
        port = free_port()
        process, log = start_listening(argv(port), self.logs / f"{name}.log", port, env=env, cwd=cwd, timeout=60)
        log.close()  # the child has its own copy
        self._processes.append(process)
        return process, port

    # -- infrastructure -----------------------------------------------------
    def start_mongo(self) -> SecantusServer:
        data = self.workdir / "secantus-data"
        shutil.rmtree(data, ignore_errors=True)
        self.mongo = SecantusServer(data).start()
        return self.mongo

    def start_redis(self) -> str:
        self.redis = RedisServer(self.logs / "redis.log").start()
        return self.redis.url

    def klines(self, database: str) -> Collection:
        """``database``'s klines collection, through one tz-aware client the stack closes."""
        assert self.mongo is not None, "start_mongo() first"
        self._client = self._client or pymongo.MongoClient(self.mongo.uri, tz_aware=True)
        return self._client[database]["klines"]

    def env(self, database: str, **extra: str) -> dict[str, str]:
        assert self.mongo is not None, "start_mongo() first"
        return service_env(self.mongo.uri, database, **PRODUCTION_ENV, **extra)

    def manage(self, args: list[str], env: Mapping[str, str], timeout: float = 300) -> str:
        """Run a ``manage.py`` command to completion; return its output."""
        return _run([str(ROOT / "manage.py"), *args], env, timeout)

    def python(self, module: str, args: list[str], env: Mapping[str, str], timeout: float = 300) -> str:
        return _run(["-m", module, *args], env, timeout)

    def prepare_database(self, env: Mapping[str, str], *, symbols: list[str] | None = None, count: int = 30) -> None:
        """Migrate; store ``count`` closed one-minute klines of each of ``symbols`` before now, through the ORM:
        the simulated exchange's series, so later closes from it continue the same price walk."""
        self.manage(["migrate", "--noinput", "-v0"], env)
        if symbols:
            code = f"SYMBOLS, COUNT = {[s.upper() for s in symbols]!r}, {count}\n{SEED}"
            self.manage(["shell", "--no-imports", "-c", code], env)

    # -- servers ------------------------------------------------------------
    def daphne(self, name: str, env: Mapping[str, str], *, root: Path = ROOT) -> tuple[subprocess.Popen, int]:
        """Our service with the Procfile's command line, from the source tree ``root``."""
        return self.serve(name, daphne_argv, env, cwd=root)

    def uvicorn(self, name: str, env: Mapping[str, str], *, ws: str) -> tuple[subprocess.Popen, int]:
        return self.serve(name, lambda port: uvicorn_argv(port, ws=ws), env)

    def bare(self, frames: list[str], *, close_reason: str = "") -> tuple[subprocess.Popen, int]:
        (self.workdir / "frames.json").write_text(json.dumps(frames))
        args = ["--frames", str(self.workdir / "frames.json"), "--close-reason", close_reason]
        return self.serve("bare", lambda port: [*BASELINES, "bare", "--port", str(port), *args])

    def naive(self, env: Mapping[str, str], symbols: list[str]) -> tuple[subprocess.Popen, int]:
        args = ["--mongo-uri", env["MONGO_URI"], "--database", env["MONGO_DATABASE"], "--symbols", ",".join(symbols)]
        return self.serve("naive", lambda port: [*BASELINES, "naive", "--port", str(port), *args])

    def exchange(
        self, name: str, symbols: list[str], env: Mapping[str, str], *, mode: tuple[str, ...] = ()
    ) -> tuple[subprocess.Popen, int]:
        """The scripted exchange (``bench/exchange.py``); ``mode`` e.g. ``("--clock-closes",)``."""
        (self.workdir / f"{name}-symbols.txt").write_text("\n".join(symbols))
        args = ["--symbols-file", str(self.workdir / f"{name}-symbols.txt"), *mode]
        # One combined-stream URL for 500 symbols is ~9.5 KB; websockets refuses request lines over 8 KiB.
        env = {**env, "WEBSOCKETS_MAX_LINE_LENGTH": str(MAX_URL_BYTES)}
        return self.serve(name, lambda port: [sys.executable, "-m", "bench.exchange", "--port", str(port), *args], env)

    def background(self, name: str, args: list[str]) -> subprocess.Popen:
        """``python args`` in the background (a bench helper process), logged like the rest."""
        return self._spawn(name, [sys.executable, *args])

    def ingest(self, name: str, env: Mapping[str, str], symbols: list[str]) -> subprocess.Popen:
        args = [sys.executable, str(ROOT / "manage.py"), "ingest_klines", "--symbols", ",".join(symbols)]
        return self._spawn(name, args, env)


def exchange_call(port: int, path: str, timeout: float = 30.0) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return json.loads(response.read())


def wait_for_streams(port: int, connections: int, timeout: float = 60.0) -> None:
    def connected() -> bool:
        return exchange_call(port, "/bench/status")["connections"] >= connections

    wait_until(connected, timeout=timeout, what=f"the ingest's {connections} stream(s) to the exchange", every=0.2)


def rss(process: subprocess.Popen) -> int:
    """Resident set size in bytes."""
    return psutil.Process(process.pid).memory_info().rss


def cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU time the process (all its threads) has used so far."""
    times = psutil.Process(process.pid).cpu_times()
    return times.user + times.system


def _run(argv: list[str], env: Mapping[str, str], timeout: float) -> str:
    """Run ``python argv`` in the project to completion; return its output, raise with it on failure."""
    done = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout
