"""scripts/run as a terminal runs it: Ctrl-C stops everything quickly; a busy port is one clear line.

The script runs in its own session, like a shell's foreground job, and Ctrl-C is
a SIGINT to that whole process group, as a terminal sends it.
"""

from __future__ import annotations

import calendar
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pymongo
import pytest

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
STOP_LOOPS = int(os.environ.get("RUN_SCRIPT_STOP_LOOPS", "3"))  # 20 for the by-hand soak
START_SECONDS = 60
STOP_SECONDS = 10

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URI", "REDIS_URL")}
    env.update(
        BINANCEWS_VAR_DIR=str(var_dir),
        PORT=str(free_port()),
        SIMULATE_PORT=str(free_port()),
        REDIS_PORT=str(free_port()),
        EMBEDDED_MONGO_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def processes_of(env: dict[str, str]) -> list[str]:
    """Live processes started by a run: they inherit its unique ``BINANCEWS_VAR_DIR``
    (redis-server overwrites its environment with its title, which names its port)."""
    marker = f"BINANCEWS_VAR_DIR={env['BINANCEWS_VAR_DIR']}\0".encode()
    redis_title = f"redis-server 127.0.0.1:{env['REDIS_PORT']}".encode()
    found = []
    for proc_dir in Path("/proc").iterdir():
        try:
            state = (proc_dir / "stat").read_bytes().rsplit(b") ", 1)[-1][:1]
            cmdline = (proc_dir / "cmdline").read_bytes()
            if state != b"Z" and (marker in (proc_dir / "environ").read_bytes() or cmdline.startswith(redis_title)):
                found.append(cmdline.replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def ports_in_use(env: dict[str, str]) -> list[str]:
    busy = []
    for name in ("PORT", "SIMULATE_PORT", "REDIS_PORT", "EMBEDDED_MONGO_PORT"):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", int(env[name]))) == 0:
                busy.append(name)
    return busy


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} within {timeout}s:\n{''.join(seen)}")


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:  # a failed test must not leave a service behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_run(env: dict[str, str], started: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # like a shell's foreground job: its own process group
    )
    started.append(proc)
    return proc


def test_ctrl_c_stops_every_process_within_seconds(tmp_path: Path, started: list) -> None:
    var_dir = tmp_path / "var"
    env = run_env(var_dir, SIMULATE_EXCHANGE="1")
    for loop in range(STOP_LOOPS):
        proc = start_run(env, started)
        head = read_until(proc, "serving:", START_SECONDS)
        assert "HTTP/2 support not enabled" not in head
        running = processes_of(env)
        assert len(running) >= 6, "\n".join(running)  # script + 5 services
        stopped_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground group
        rest, _ = proc.communicate(timeout=STOP_SECONDS)
        took = time.monotonic() - stopped_at
        print(f"loop {loop}: Ctrl-C to exit {took:.1f}s")  # shown with -s
        assert proc.returncode == 0, rest
        assert took < STOP_SECONDS, took
        assert processes_of(env) == []
        assert ports_in_use(env) == [], f"loop {loop}: still listening"
        assert "stream lost" not in rest
        assert "did not stop" not in rest, rest


def test_a_busy_port_is_one_line_naming_port(tmp_path: Path, started: list) -> None:
    with socket.socket() as occupied:
        occupied.bind(("127.0.0.1", 0))
        occupied.listen()
        port = occupied.getsockname()[1]
        var_dir = tmp_path / "var"
        env = run_env(var_dir, PORT=str(port))
        began = time.monotonic()
        proc = start_run(env, started)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert time.monotonic() - began < 15
    assert f"binancews: port {port} is in use on 127.0.0.1; set PORT=... to use another" in out
    assert "serving:" not in out
    assert processes_of(env) == []


def test_make_simulate_again_on_another_port_records_on_and_another_speed_is_refused(
    tmp_path: Path, started: list
) -> None:
    """The record's exchange is the simulator's seed and clock, not its port: a second `make simulate` on another
    SIMULATE_PORT goes on recording into the same data directory; one at another SIMULATE_SPEED is refused."""
    env = run_env(tmp_path / "var", SIMULATE_EXCHANGE="1")
    mongo = f"mongodb://127.0.0.1:{env['EMBEDDED_MONGO_PORT']}/?directConnection=true"
    recorded = 0
    for port in (env["SIMULATE_PORT"], str(free_port())):
        proc = start_run({**env, "SIMULATE_PORT": port}, started)
        out = read_until(proc, "serving:", START_SECONDS)
        with pymongo.MongoClient(mongo) as client:
            klines = client["binancews_simulated"]["klines"]
            before = recorded
            recorded = wait_until(
                lambda: (n := klines.count_documents({})) > before and n,  # noqa: B023
                timeout=START_SECONDS,
                what="klines recorded",
            )
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=STOP_SECONDS)
        assert proc.returncode == 0, out + rest
        assert "holds klines from" not in out + rest
    proc = start_run({**env, "SIMULATE_PORT": str(free_port()), "SIMULATE_SPEED": "60"}, started)
    out, _ = proc.communicate(timeout=START_SECONDS)
    assert proc.returncode != 0
    epoch = (tmp_path / "var" / "simulated-epoch").read_text().strip()
    refusals = [line for line in out.splitlines() if "holds klines from" in line]
    assert len(refusals) == 1, out
    assert refusals[0].startswith(
        "CommandError: this database holds klines from simulated:seed=1,speed=1, not "
        f"simulated:seed=1,speed=60,epoch={epoch} (http://127.0.0.1:"
    ), out
    assert processes_of(env) == []


def test_the_history_line_make_simulate_prints_backfills_from_another_terminal(tmp_path: Path, started: list) -> None:
    """Issue 21's offline path: the `backfill_klines` line `make simulate` prints works as printed, in a shell
    that has none of the script's variables, and the mirror then serves the days it filled."""
    env = run_env(tmp_path / "var", SIMULATE_EXCHANGE="1")
    proc = start_run(env, started)
    head = read_until(proc, "serving:", START_SECONDS)
    try:
        line = next(text for text in head.splitlines() if text.startswith("history (another terminal): "))
        since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))  # yesterday: its daily file, then REST
        command = line.partition(": ")[2].replace("YYYY-MM-DD", since) + " --symbols btcusdt --intervals 1m --quiet"
        terminal = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "BINANCEWS_ENV_FILE": ""}
        done = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, env=terminal, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "BTCUSDT 1m" in done.stdout, done.stdout
        start_ms = calendar.timegm(time.strptime(since, "%Y-%m-%d")) * 1000
        url = (
            f"http://127.0.0.1:{env['PORT']}/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime={start_ms}&limit=1500"
        )
        rows = httpx.get(url, timeout=30).json()
        assert rows[0][0] == start_ms
        assert [row[0] for row in rows] == [start_ms + i * 60_000 for i in range(len(rows))]
        assert len(rows) == 1500  # a full page from yesterday's midnight, no hole
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it: every service stops
        proc.communicate(timeout=STOP_SECONDS)
    assert processes_of(env) == []
