"""Scenario pythons: the connect storm and the fan-out under every supported Python.

For each Python 3.11-3.13 found (:mod:`bench.interpreters`), the bench runs itself as
``<venv>/bin/python -m bench --only storm,fanout`` with this run's sizes, so the whole
stack runs under that Python (the servers are that venv's console scripts). Rounds
rotate the order; each figure is the median over rounds, every round in the JSON.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import interpreters
from bench.options import RESULTS, Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from klines.testing.servers import ROOT

VENVS = RESULTS / "venvs"  # outside the work dir, which every run wipes
CHILD_TIMEOUT = 3600.0
# The figures compared, lower is better: (key, label).
# The last, daphne's p99 over the bare server's stormed in the same child run: machine noise mostly cancels.
RANKED = (("storm_daphne_p99_ms", "daphne storm p99"), ("fanout_p99_ms", "fan-out p99"),
          ("ratio_p99_daphne_over_bare", "daphne/bare p99"))  # fmt: skip


def child_args(options: Options, *, output: Path, workdir: Path) -> list[str]:
    """``python -m bench`` arguments that repeat this run's storm and fan-out under another Python."""
    args = ["-m", "bench", "--only", "storm,fanout", "--output", str(output), "--workdir", str(workdir)]
    args += ["--connections", str(options.connections), "--rounds", str(options.rounds)]
    args += ["--idle", str(options.idle), "--fanout-rounds", str(options.fanout_rounds)]
    return [*args, "--quick"] if options.quick else args


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The figures compared across Pythons, from one child run's JSON."""
    storm = result["scenarios"]["storm"]
    fanout = result["scenarios"]["fanout"]

    def number(value: Any) -> float:
        return math.nan if value is None else float(value)

    out: dict[str, Any] = {"python": result["machine"]["python"]}
    for name, server in (("daphne", storm["servers"]["a"]), ("bare", storm["servers"]["b"])):
        out |= {f"storm_{name}_p50_ms": number(server["p50_ms"]), f"storm_{name}_p99_ms": number(server["p99_ms"])}
        out[f"storm_{name}_conn_per_s"] = number(server["connections_per_s"])
    out |= {"storm_errors": storm["servers"]["a"]["errors"] + storm["servers"]["b"]["errors"]}
    out |= {
        "ratio_p99_daphne_over_bare": number(storm["ratio_p99_a_over_b"]),
        "fanout_p50_ms": number(fanout["p50_ms"]),
    }
    out |= {"fanout_p99_ms": number(fanout["p99_ms"]) if not fanout["missing"] else math.nan}
    return out | {"fanout_missing": fanout["missing"], "load_average_before": result["load_average_before"][0]}


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over rounds; every round's value under ``per_round``."""
    numbers = [k for k, v in rounds[0].items() if isinstance(v, float)]
    out: dict[str, Any] = {k: statistics.median(r[k] for r in rounds) for k in numbers}
    out |= {k: sum(r[k] for r in rounds) for k in ("storm_errors", "fanout_missing")}
    out |= {"python": rounds[0]["python"], "rounds": len(rounds)}
    return out | {"per_round": {k: [r[k] for r in rounds] for k in numbers}}


def fastest(pythons: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per ranked figure: the fastest Python, every Python's value over the fastest's, and whether
    the lead is clear (the fastest's worst round beats every other Python's best round; None, not
    judged, when a Python has a single round)."""
    verdict: dict[str, Any] = {}
    for key, _label in RANKED:
        measured = {name: p for name, p in pythons.items() if not math.isnan(p[key])}
        if not measured:
            continue
        best = min(measured, key=lambda name: measured[name][key])
        worst_round = max(measured[best]["per_round"][key])
        others = [min(p["per_round"][key]) for name, p in measured.items() if name != best]
        judged = len(measured) > 1 and all(p["rounds"] > 1 for p in measured.values())
        verdict[key] = {
            "fastest": best,
            "over_fastest": {name: p[key] / measured[best][key] for name, p in measured.items()},
            "clear": all(worst_round < other for other in others) if judged else None,
        }
    return verdict


def verdict_rows(verdict: dict[str, Any], versions: dict[str, str]) -> list[tuple[str, str, str]]:
    """(subject, figures, notes) per ranked figure: the fastest Python and the others' ratio to it."""
    rows = []
    for key, label in RANKED:
        if key not in verdict:
            rows.append((f"fastest by {label}", "not measured", ""))
            continue
        v = verdict[key]
        ratios = ", ".join(f"{versions[n]} {r:.2f}x" for n, r in v["over_fastest"].items() if n != v["fastest"])
        lead = {True: "clear in every round", False: "rounds overlap: within noise", None: "one round: not judged"}
        notes = f"{ratios or 'alone'}; {lead[v['clear']]}"
        rows.append((f"fastest by {label}", f"Python {versions[v['fastest']]}", notes))
    return rows


def _run_child(venv_python: Path, args: list[str], log: Path) -> dict[str, Any]:
    with open(log, "ab") as out:
        done = subprocess.run(
            [venv_python, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=CHILD_TIMEOUT
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"exit {done.returncode}: {tail[0]} (see {log})")
    output = Path(args[args.index("--output") + 1])
    return json.loads(output.read_text())


async def run(options: Options, logs: Path, progress: Callable[[str], None]) -> Outcome:
    found: dict[str, interpreters.Interpreter] = {}
    missing: list[str] = []
    for minor in interpreters.SUPPORTED:
        if minor == sys.version_info[:2]:  # this very interpreter, whose venv is reused
            interpreter = await asyncio.to_thread(interpreters.probe, sys.executable)
        else:
            interpreter = await asyncio.to_thread(interpreters.find, minor)
        if interpreter is None:
            missing.append(f"{minor[0]}.{minor[1]}")
        else:
            found[interpreter.name] = interpreter
    venvs: dict[str, interpreters.Venv] = {}
    failures: dict[str, str] = {}
    for name, interpreter in found.items():
        try:
            venvs[name] = await asyncio.to_thread(interpreters.ensure_venv, interpreter, VENVS, progress)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            failures[name] = f"venv: {exc}"

    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in venvs}
    order = list(venvs)
    for round_no in range(options.pythons_rounds):
        shift = round_no % max(1, len(order))
        for name in order[shift:] + order[:shift]:
            if name in failures:
                continue
            progress(f"pythons: round {round_no + 1}/{options.pythons_rounds}, Python {found[name].version}")
            workdir = options.workdir / "pythons" / f"{name}-{round_no + 1}"
            args = child_args(options, output=workdir / "result.json", workdir=workdir)
            try:
                result = await asyncio.to_thread(_run_child, venvs[name].python, args, logs / f"pythons-{name}.log")
                rounds[name].append(summarize(result))
            except (OSError, RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as exc:
                failures[name] = f"round {round_no + 1}: {exc}"

    measured = {name: combine(r) for name, r in rounds.items() if r and name not in failures}
    verdict = fastest(measured)
    data = {"rounds": options.pythons_rounds, "running_python": sys.version.split()[0], "not_measured": missing}
    data["interpreters"] = {n: {"version": i.version, "executable": i.executable} for n, i in found.items()}
    data["venvs"] = {
        n: {"python": str(v.python), "installed": v.installed, "seconds": v.seconds} for n, v in venvs.items()
    }
    outcome = Outcome("pythons", data | {"failures": failures, "pythons": measured, "fastest": verdict})
    title = f"pythons (storm {options.connections} x {options.rounds}, fan-out {options.idle}; median of rounds)"
    for name, p in measured.items():
        venv, version, per_round = venvs[name], f"Python {p['python']}", p["per_round"]
        setup = f"venv {venv.installed}" + (f" in {venv.seconds:.0f} s" if venv.seconds else "")
        daphne_notes = f"p99 per round {_list(per_round['storm_daphne_p99_ms'])}; {setup}"
        bare_notes = f"daphne/bare p99 {fmt(p['ratio_p99_daphne_over_bare'], 2)}"
        for subject, key, notes in (("storm a daphne", "daphne", daphne_notes), ("storm b bare", "bare", bare_notes)):
            figures = f"p50 {fmt(p[f'storm_{key}_p50_ms'])} / p99 {fmt(p[f'storm_{key}_p99_ms'])} ms"
            figures += f", {fmt(p[f'storm_{key}_conn_per_s'], 0)} conn/s"
            outcome.rows.append((title, f"{version}: {subject}", figures, notes))
        fanout = f"p50 {fmt(p['fanout_p50_ms'])} / p99 {fmt(p['fanout_p99_ms'])} ms"
        notes = f"p99 per round {_list(per_round['fanout_p99_ms'])} ms; load {_list(per_round['load_average_before'])}"
        outcome.rows.append((title, f"{version}: fan-out", fanout, notes))
        outcome.targets += [
            check(f"{version}: connect p99 daphne/bare", p["ratio_p99_daphne_over_bare"], "<=", 2),
            check(f"{version}: fan-out p99 (ms)", p["fanout_p99_ms"], "<", 100),
        ]
    for name, why in failures.items():
        outcome.rows.append((title, f"Python {found[name].version}", "FAILED", why))
        outcome.targets.append(check(f"Python {found[name].version}: measured", math.nan, ">=", 1, why))
    for name in missing:
        outcome.rows.append((title, f"Python {name}", "not measured", f"no python{name} on PATH or in ~/.pyenv"))
    versions = {name: p["python"] for name, p in measured.items()}
    outcome.rows += [(title, *row) for row in verdict_rows(verdict, versions)]
    return outcome


def _list(values: list[float]) -> str:
    return ", ".join(fmt(v) for v in values)
