"""Scenario 1, the connect storm: our daphne, the bare ceiling, the naive design, uvicorn.

All four servers run side by side on the same SecantusDB data. Each round
storms every server once, in a rotated order, so machine noise is spread over
all of them; the figures pool every round.

A second client, not written for this project: Node's ``ws``, pinned in ``bench/node/`` and
installed on first use (``npm ci``); ``bench/node/storm.mjs`` runs the same storm on (a) and
(b). Without node or npm, :func:`node_unavailable` says why and that client is not measured.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import load
from bench.options import Options
from bench.report import check, fmt, latency_summary
from bench.scenarios import SYMBOLS, Outcome
from bench.stack import Stack, cpu_seconds

DATABASE = "bench_storm"
LABELS = {"a": "a daphne (our service)", "b": "b bare websockets (ceiling)", "c": "c naive, query per connection",
          "d": "d our app under uvicorn"}  # fmt: skip


NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "storm.mjs"


def pinned_version() -> str:
    return json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["ws"]


def installed_version() -> str | None:
    installed = NODE_DIR / "node_modules" / "ws" / "package.json"
    return json.loads(installed.read_text())["version"] if installed.exists() else None


def node_unavailable() -> str | None:
    """``None`` when Node's ws client is ready (installing it on first use); otherwise why, in one line."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node or npm not found (e.g. apt-get install nodejs npm): Node's ws client not measured"
    if installed_version() != pinned_version():
        npm = ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
        done = subprocess.run(npm, cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or installed_version() != pinned_version():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"npm ci in bench/node failed ({last[0]}): Node's ws client not measured"
    return None


async def node_storm(
    port: int, *, connections: int, concurrency: int, path: str = "/", frames: int = 5, time_limit: float = 30.0
) -> tuple[load.StormResult, float]:
    """The storm through Node's ws; return its result and the node process's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    args = [f"--url=ws://127.0.0.1:{port}{path}", f"--connections={connections}", f"--concurrency={concurrency}"]
    args += [f"--frames={frames}", f"--timeout={time_limit:g}"]
    pipe = asyncio.subprocess.PIPE
    process = await asyncio.create_subprocess_exec("node", str(SCRIPT), *args, stdout=pipe, stderr=pipe)
    out, err = await process.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode != 0:
        raise RuntimeError(f"node storm.mjs exited with {process.returncode}: {err.decode()[-300:]}")
    data = json.loads(out)
    latencies, frames_seen = [ms / 1000 for ms in data["latencies_ms"]], [f.encode() for f in data["frames"]]
    return load.StormResult(latencies, data["errors"], data["first_error"], data["wall_s"], frames_seen), cpu


@dataclass
class Runs:
    """One client's storms of one server, pooled over the rounds."""

    latencies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    round_p99: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    errors: int = 0
    first_error: str = ""
    identical: bool = True  # every storm got daphne's very frames

    def add(self, result: load.StormResult, frames: list[bytes], *, client_cpu: float, server_cpu: float = 0.0) -> None:
        self.latencies += result.latencies
        self.rates.append(result.rate)
        self.round_p99.append(latency_summary(result.latencies)["p99_ms"])
        self.client_cpu += client_cpu
        self.server_cpu += server_cpu
        self.errors += result.errors
        self.first_error = self.first_error or result.first_error
        self.identical = self.identical and (not result.frames or result.frames == frames)

    def summary(self, key: str) -> dict:
        count = max(1, len(self.latencies))
        out = {"label": LABELS[key], **latency_summary(self.latencies), "rates_per_round": self.rates}
        out |= {"connections_per_s": statistics.median(self.rates), "p99_ms_per_round": self.round_p99}
        out |= {"server_cpu_us_per_connection": self.server_cpu / count * 1e6, "errors": self.errors}
        out |= {"client_cpu_us_per_connection": self.client_cpu / count * 1e6, "first_error": self.first_error}
        return out | {"frames_identical_to_daphne": self.identical}


async def run(stack: Stack, options: Options) -> Outcome:
    env = stack.env(DATABASE)  # seeded by bench.__main__, shared with the memory scenario
    daphne, daphne_port = stack.daphne("storm-daphne", env)
    uvicorn, uvicorn_port = stack.uvicorn("storm-uvicorn", env, ws=options.uvicorn_ws)
    naive, naive_port = stack.naive(env, SYMBOLS)

    # Warm up (the first connection loads the payloads), and take the service's frames for the ceiling.
    warm = await load.storm(daphne_port, connections=20, concurrency=5)
    if not warm.frames:
        raise RuntimeError(f"daphne sent no frames: {warm.first_error}")
    frames = warm.frames
    bare, bare_port = stack.bare([f.decode() for f in frames])
    ports = {"a": daphne_port, "b": bare_port, "c": naive_port, "d": uvicorn_port}
    processes = {"a": daphne, "b": bare, "c": naive, "d": uvicorn}
    runs = {key: Runs() for key in ports}
    for key, port in ports.items():
        runs[key].identical = (await load.storm(port, connections=20, concurrency=5)).frames == frames
    node_missing = node_unavailable()  # the second client: Node's ws, on daphne (a) and the ceiling (b)
    node_keys = "ab" if node_missing is None else ""
    node = {key: Runs() for key in node_keys}
    order = list(ports)
    for round_no in range(options.rounds):
        shift = round_no % len(order)
        for key in order[shift:] + order[:shift]:
            server_before, client_before = cpu_seconds(processes[key]), time.process_time()
            result = await load.storm(ports[key], connections=options.connections, concurrency=options.concurrency)
            server_cpu = cpu_seconds(processes[key]) - server_before
            runs[key].add(result, frames, client_cpu=time.process_time() - client_before, server_cpu=server_cpu)
        for key in node_keys if round_no % 2 == 0 else node_keys[::-1]:
            result, cpu = await node_storm(ports[key], connections=options.connections, concurrency=options.concurrency)
            node[key].add(result, frames, client_cpu=cpu)

    servers = {key: r.summary(key) for key, r in runs.items()}
    p99 = {key: s["p99_ms"] for key, s in servers.items()}
    rate = {key: s["connections_per_s"] for key, s in servers.items()}
    ratios = {"p99_a_over_b": p99["a"] / p99["b"], "p99_c_over_a": p99["c"] / p99["a"]}
    ratios |= {"p99_d_over_b": p99["d"] / p99["b"], "rate_a_over_b": rate["a"] / rate["b"]}
    data = {"connections_per_round": options.connections, "in_flight": options.concurrency, "rounds": options.rounds}
    data |= {"coins": [json.loads(f)["coin"] for f in frames], "servers": servers}
    data |= {f"ratio_{k}": v for k, v in ratios.items()} | {"node_ws": node_summary(node, node_missing)}
    outcome = Outcome("storm", data)
    title = f"connect storm ({options.connections} x {options.rounds} rounds, {options.concurrency} in flight)"
    for s in servers.values():
        notes = f"server {fmt(s['server_cpu_us_per_connection'], 0)} / "
        outcome.rows.append((title, s["label"], _figures(s), notes + _client_notes(s)))
    outcome.targets = [
        check("connect p99 a/b (daphne vs bare ceiling)", ratios["p99_a_over_b"], "<=", 2),
        check("connect conn/s a/b (daphne vs bare ceiling)", ratios["rate_a_over_b"], ">=", 0.7),
        check("connect p99 c/a (naive vs daphne)", ratios["p99_c_over_a"], ">=", 20),
    ]
    node_report(outcome, title, data["node_ws"])
    return outcome


def _figures(s: dict) -> str:
    p = f"p50 {fmt(s['p50_ms'])} / p95 {fmt(s['p95_ms'])} / p99 {fmt(s['p99_ms'])} ms"
    return f"{p}, {fmt(s['connections_per_s'], 0)} conn/s"


def _client_notes(s: dict) -> str:
    notes = f"client {fmt(s['client_cpu_us_per_connection'], 0)} CPU us per conn, {s['errors']} errors"
    return notes + ("" if s["frames_identical_to_daphne"] else ", FRAMES DIFFER")


def node_summary(node: dict[str, Runs], missing: str | None) -> dict:
    """Node ws's figures on daphne (a) and the ceiling (b), and their ratios; or why it was not measured."""
    if missing is not None:
        return {"measured": False, "why": missing}
    servers = {key: runs.summary(key) for key, runs in node.items()}
    a, b = servers["a"], servers["b"]
    out = {"measured": True, "ws_version": pinned_version(), "servers": servers}
    out["ratio_p99_a_over_b"] = a["p99_ms"] / b["p99_ms"]
    return out | {"ratio_rate_a_over_b": a["connections_per_s"] / b["connections_per_s"]}


def node_report(outcome: Outcome, title: str, node: dict) -> None:
    """Rows and targets for the Node ws client (a row saying why when it was not measured)."""
    if not node["measured"]:
        outcome.rows.append((title, "Node ws client", "not measured", node["why"]))
        return
    for s in node["servers"].values():
        outcome.rows.append((title, f"Node ws {node['ws_version']}: {s['label']}", _figures(s), _client_notes(s)))
    outcome.targets += [
        check("connect p99 a/b, Node ws client", node["ratio_p99_a_over_b"], "<=", 2),
        check("connect conn/s a/b, Node ws client", node["ratio_rate_a_over_b"], ">=", 0.7),
    ]
