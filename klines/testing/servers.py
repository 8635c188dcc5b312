"""Start and stop the real servers the tests and the benchmarks talk to, on free 127.0.0.1 ports.

Like channels' ``channels/testing/live.py``: a harness that both use lives in the package.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import pymongo

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something true (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop_process(process: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Signal ``process`` and wait; kill it if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class SecantusServer:
    """A real SecantusDB (MongoDB wire protocol) server with its data in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None, *, auth: bool = False) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.auth = auth  # SCRAM required: create users without it, then restart with it
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> SecantusServer:
        executable = shutil.which("secantusd-py", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        if executable is None:
            raise RuntimeError("secantusd-py not found: pip install -r requirements.txt")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.data_dir.parent / f"secantus-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                executable,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                str(self.data_dir),
                "--log-level",
                "WARNING",
                *(["--auth"] if self.auth else []),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, process=self.process)
        client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=20000)
        client.admin.command("ping")
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, sig=signal.SIGINT)
            self.process = None
            self.log.close()


def service_env(mongo_uri: str, database: str, **extra: str) -> dict[str, str]:
    """The environment for a manage.py / daphne subprocess of the service."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "KLINE_", "BINANCE_", "REDIS_", "DJANGO_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "binancews.settings",
            "BINANCEWS_ENV_FILE": "",  # never the developer's .env
            "DJANGO_DEBUG": "true",  # development defaults (a secret key, any host); extra may turn it off
            "DJANGO_HTTPS": "false",  # test servers speak plain http on 127.0.0.1, even with DJANGO_DEBUG off
            "MONGO_URI": mongo_uri,
            "MONGO_DATABASE": database,
            "PYTHONUNBUFFERED": "1",
            # A first start stores the newest 11 klines, not KLINE_HISTORY's 1,500: the tests and benchmarks
            # built on that; those of the history set it (tests/test_first_start.py).
            "KLINE_HISTORY": "0",
            # Never Binance's public archive: nothing listens on the discard port, so a command that was not
            # pointed at a simulated exchange's archive is refused at once instead of waiting on DNS.
            "BINANCE_ARCHIVE_URL": "http://127.0.0.1:9",
        }
    )
    env.update(extra)
    return env


TEST_SOURCE = "test-exchange"  # KLINE_SOURCE of the simulated exchanges tests and benchmarks start


def exchange_urls(port: int) -> dict[str, str]:
    """Settings that point the service at a (simulated) exchange on 127.0.0.1:``port``."""
    return {
        "BINANCE_WS_URL": f"ws://127.0.0.1:{port}/market",
        "BINANCE_REST_URL": f"http://127.0.0.1:{port}",
        "KLINE_SOURCE": TEST_SOURCE,
    }


def manage(args: list[str], env: Mapping[str, str], **popen: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=dict(env), **popen)


def daphne_argv(port: int) -> list[str]:
    """The Procfile's daphne command line (listen backlog 1024), on 127.0.0.1:``port``."""
    endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog=1024"
    return [str(BIN / "daphne"), "-e", endpoint, "binancews.asgi:application"]


def uvicorn_argv(port: int, *, ws: str = "websockets-sansio") -> list[str]:
    """The same application under uvicorn, as the README offers it (``--ws websockets-sansio``)."""
    args = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--ws", ws, "--log-level", "warning"]
    return [*args, "binancews.asgi:application"]


def daphne(port: int, env: Mapping[str, str], log_path: Path, *, timeout: float = 20.0) -> subprocess.Popen:
    process, log = start_listening(daphne_argv(port), log_path, port, env=env, timeout=timeout)
    log.close()  # the child has its own copy
    return process


def uvicorn(port: int, env: Mapping[str, str], log_path: Path) -> subprocess.Popen:
    process, log = start_listening(uvicorn_argv(port), log_path, port, env=env)
    log.close()
    return process


class RedisServer:
    """A real redis-server on a free port, nothing persisted."""

    def __init__(self, log_path: Path, *, password: str | None = None) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.password = password  # clients must AUTH with it (--requirepass)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        userinfo = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"redis://{userinfo}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        argv = [executable, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        self.process, self.log = start_listening(argv, self.log_path, self.port)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
            self.log.close()


def start_listening(
    argv: list[str],
    log_path: Path,
    port: int,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 20.0,
) -> tuple[subprocess.Popen, BinaryIO]:
    """Start a server with its output appended to ``log_path``; return once it listens on ``port``."""
    log = open(log_path, "ab")  # noqa: SIM115
    process = subprocess.Popen(
        argv, cwd=cwd, env=dict(env) if env is not None else None, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, timeout=timeout, process=process)
    except (RuntimeError, TimeoutError) as exc:
        stop_process(process)
        log.close()
        raise RuntimeError(f"{Path(argv[0]).name} did not start: {exc}; see {log_path}") from None
    return process, log


class PrometheusServer:
    """A real Prometheus on a free port, scraping ``targets`` (job -> host:port) every second."""

    def __init__(self, executable: str, data_dir: Path, targets: Mapping[str, str]) -> None:
        self.executable = executable
        self.data_dir = data_dir
        self.targets = dict(targets)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        jobs = "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            for job, target in self.targets.items()
        )
        config = self.data_dir / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}")
        argv = [
            self.executable,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.process, self.log = start_listening(argv, self.data_dir / "prometheus.log", self.port)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
            self.log.close()
