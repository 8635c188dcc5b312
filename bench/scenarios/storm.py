"""Scenario 1, the connect storm: our daphne, the bare ceiling, the naive design, uvicorn.

All four servers run side by side on the same SecantusDB data. Each round
storms every server once, in a rotated order, so machine noise is spread over
all of them; the figures pool every round.
"""

from __future__ import annotations

import json
import statistics
import time

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
    server_cpu = dict.fromkeys(ports, 0.0)
    client_cpu = dict.fromkeys(ports, 0.0)
    identical = {}
    for key, port in ports.items():
        check_run = await load.storm(port, connections=20, concurrency=5)
        identical[key] = check_run.frames == frames
    coins = [json.loads(f)["coin"] for f in frames]

    latencies: dict[str, list[float]] = {k: [] for k in ports}
    rates: dict[str, list[float]] = {k: [] for k in ports}
    round_p99: dict[str, list[float]] = {k: [] for k in ports}
    errors = dict.fromkeys(ports, 0)
    first_errors: dict[str, str] = {}
    node_missing = nodeclient.unavailable()  # the second client: Node's ws, on daphne (a) and the ceiling (b)
    node_keys = "ab" if node_missing is None else ""
    node: dict[str, dict] = {k: {"latencies": [], "rates": [], "round_p99": [], "cpu": 0.0, "errors": 0} for k in "ab"}
    order = list(ports)
    for round_no in range(options.rounds):
        shift = round_no % len(order)
        for key in order[shift:] + order[:shift]:
            server_before, client_before = cpu_seconds(processes[key]), time.process_time()
            result = await load.storm(ports[key], connections=options.connections, concurrency=options.concurrency)
            server_cpu[key] += cpu_seconds(processes[key]) - server_before
            client_cpu[key] += time.process_time() - client_before
            latencies[key] += result.latencies
            rates[key].append(result.rate)
            round_p99[key].append(latency_summary(result.latencies)["p99_ms"])
            errors[key] += result.errors
            if result.first_error:
                first_errors.setdefault(key, result.first_error)
        for key in node_keys if round_no % 2 == 0 else node_keys[::-1]:
            result, cpu = await nodeclient.storm(
                ports[key], connections=options.connections, concurrency=options.concurrency
            )
            node_run(node[key], result, cpu, frames)

    servers = {}
    for key in ports:
        servers[key] = {
            "label": LABELS[key],
            **latency_summary(latencies[key]),
            "connections_per_s": statistics.median(rates[key]),
            "rates_per_round": rates[key],
            "p99_ms_per_round": round_p99[key],
            "server_cpu_us_per_connection": server_cpu[key] / max(1, len(latencies[key])) * 1e6,
            "client_cpu_us_per_connection": client_cpu[key] / max(1, len(latencies[key])) * 1e6,
            "errors": errors[key],
            "first_error": first_errors.get(key, ""),
            "frames_identical_to_daphne": identical[key],
        }
    a_over_b = servers["a"]["p99_ms"] / servers["b"]["p99_ms"]
    c_over_a = servers["c"]["p99_ms"] / servers["a"]["p99_ms"]
    d_over_b = servers["d"]["p99_ms"] / servers["b"]["p99_ms"]
    c_over_d = servers["c"]["p99_ms"] / servers["d"]["p99_ms"]
    rate = {k: s["connections_per_s"] for k, s in servers.items()}
    outcome = Outcome(
        "storm",
        {
            "connections_per_round": options.connections,
            "in_flight": options.concurrency,
            "rounds": options.rounds,
            "uvicorn_ws": options.uvicorn_ws,
            "coins": coins,
            "servers": servers,
            "ratio_p99_a_over_b": a_over_b,
            "ratio_p99_c_over_a": c_over_a,
            "ratio_p99_d_over_b": d_over_b,
            "ratio_p99_c_over_d": c_over_d,
            "ratio_rate_a_over_c": rate["a"] / rate["c"],
            "ratio_rate_b_over_a": rate["b"] / rate["a"],
        },
    )
    outcome.data["node_ws"] = node_summary(node, node_missing)
    title = f"connect storm ({options.connections} x {options.rounds} rounds, {options.concurrency} in flight)"
    for s in servers.values():
        figures = (
            f"p50 {fmt(s['p50_ms'])} / p95 {fmt(s['p95_ms'])} / p99 {fmt(s['p99_ms'])} ms, "
            f"{fmt(s['connections_per_s'], 0)} conn/s"
        )
        notes = (
            f"server {fmt(s['server_cpu_us_per_connection'], 0)} / "
            f"client {fmt(s['client_cpu_us_per_connection'], 0)} CPU us per conn, {s['errors']} errors"
        ) + ("" if s["frames_identical_to_daphne"] else ", FRAMES DIFFER")
        outcome.rows.append((title, s["label"], figures, notes))
    outcome.targets = [
        check("connect p99 a/b (daphne vs bare ceiling)", a_over_b, "<=", 2),
        check("connect conn/s a/b (daphne vs bare ceiling)", rate["a"] / rate["b"], ">=", 0.7),
        check("connect p99 c/a (naive vs daphne)", c_over_a, ">=", 20),
    ]
    node_report(outcome, title, outcome.data["node_ws"])
    outcome.rows.append(
        (
            title,
            "uvicorn: ratio p99 d/b and c/d",
            f"{d_over_b:.2f} and {c_over_d:.1f}",
            "the same application, another server",
        )
    )
    outcome.rows.append(
        (
            title,
            "conn/s ratios b/a and a/c",
            f"{rate['b'] / rate['a']:.2f} and {rate['a'] / rate['c']:.1f}",
            "throughput bounds the p99 at a fixed number in flight",
        )
    )
    return outcome


def node_run(into: dict, result: load.StormResult, cpu: float, frames: list[bytes]) -> None:
    """Pool one Node ws storm into ``into``."""
    into["latencies"] += result.latencies
    into["rates"].append(result.rate)
    into["round_p99"].append(latency_summary(result.latencies)["p99_ms"])
    into["cpu"] += cpu
    into["errors"] += result.errors
    if result.first_error:
        into.setdefault("first_error", result.first_error)
    into["frames_identical_to_daphne"] = into.get("frames_identical_to_daphne", True) and result.frames == frames


def node_summary(node: dict[str, dict], missing: str | None) -> dict:
    """Node ws's figures on daphne (a) and the ceiling (b), and their ratios; or why it was not measured."""
    if missing is not None:
        return {"measured": False, "why": missing}
    servers = {}
    for key, runs in node.items():
        servers[key] = {
            "label": LABELS[key],
            **latency_summary(runs["latencies"]),
            "connections_per_s": statistics.median(runs["rates"]),
            "rates_per_round": runs["rates"],
            "p99_ms_per_round": runs["round_p99"],
            "client_cpu_us_per_connection": runs["cpu"] / max(1, len(runs["latencies"])) * 1e6,
            "errors": runs["errors"],
            "first_error": runs.get("first_error", ""),
            "frames_identical_to_daphne": runs.get("frames_identical_to_daphne", False),
        }
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
        figures = (
            f"p50 {fmt(s['p50_ms'])} / p95 {fmt(s['p95_ms'])} / p99 {fmt(s['p99_ms'])} ms, "
            f"{fmt(s['connections_per_s'], 0)} conn/s"
        )
        notes = f"client {fmt(s['client_cpu_us_per_connection'], 0)} CPU us per conn, {s['errors']} errors" + (
            "" if s["frames_identical_to_daphne"] else ", FRAMES DIFFER"
        )
        outcome.rows.append((title, f"Node ws {node['ws_version']}: {s['label']}", figures, notes))
    outcome.targets += [
        check("connect p99 a/b, Node ws client", node["ratio_p99_a_over_b"], "<=", 2),
        check("connect conn/s a/b, Node ws client", node["ratio_rate_a_over_b"], ">=", 0.7),
    ]
