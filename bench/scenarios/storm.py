"""Scenario 1, the connect storm: our daphne, the bare ceiling, the naive design, uvicorn.

All four servers run side by side on the same SecantusDB data. Each round
storms every server once, in a rotated order, so machine noise is spread over
all of them; the figures pool every round.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field

from bench import load, nodeclient
from bench.options import Options
from bench.report import check, fmt, latency_summary
from bench.scenarios import SYMBOLS, Outcome
from bench.stack import Stack, cpu_seconds

DATABASE = "bench_storm"
LABELS = {
    "a": "a daphne (our service)",
    "b": "b bare websockets (ceiling)",
    "c": "c naive, query per connection",
    "d": "d our app under uvicorn",
}


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
        return {
            "label": LABELS[key],
            **latency_summary(self.latencies),
            "connections_per_s": statistics.median(self.rates),
            "rates_per_round": self.rates,
            "p99_ms_per_round": self.round_p99,
            "server_cpu_us_per_connection": self.server_cpu / count * 1e6,
            "client_cpu_us_per_connection": self.client_cpu / count * 1e6,
            "errors": self.errors,
            "first_error": self.first_error,
            "frames_identical_to_daphne": self.identical,
        }


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
    node_missing = nodeclient.unavailable()  # the second client: Node's ws, on daphne (a) and the ceiling (b)
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
            result, cpu = await nodeclient.storm(
                ports[key], connections=options.connections, concurrency=options.concurrency
            )
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
    return {
        "measured": True,
        "ws_version": nodeclient.pinned_version(),
        "servers": servers,
        "ratio_p99_a_over_b": servers["a"]["p99_ms"] / servers["b"]["p99_ms"],
        "ratio_rate_a_over_b": servers["a"]["connections_per_s"] / servers["b"]["connections_per_s"],
    }


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
