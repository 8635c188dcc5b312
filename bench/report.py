"""Percentiles, the machine description, the printed table and the JSON file."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    out = {"count": len(seconds), "min_ms": min(seconds) * 1000 if seconds else math.nan}
    out |= {f"p{q}_ms": percentile(seconds, q) * 1000 for q in (50, 95, 99)}
    return out | {"max_ms": max(seconds) * 1000 if seconds else math.nan}


def distribution(seconds: Sequence[float], limit: float) -> dict[str, float]:
    """min/p50/p90/max of ``seconds`` and how many were under ``limit``."""
    out = {"count": len(seconds), "min_s": min(seconds) if seconds else math.nan}
    out |= {"p50_s": percentile(seconds, 50), "p90_s": percentile(seconds, 90)}
    return out | {"max_s": max(seconds) if seconds else math.nan, "under_limit": sum(1 for s in seconds if s < limit)}


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    packages = ("daphne", "uvicorn", "websockets", "channels", "channels-redis", "Django", "SecantusDB", "pymongo")
    out = {"nproc": os.cpu_count(), "cpu_model": model, "ram_gib": round(psutil.virtual_memory().total / 2**30, 1)}
    out |= {"python": platform.python_version(), "platform": platform.platform()}
    return out | {"packages": {name: version(name) for name in packages}}


@dataclass
class Target:
    name: str
    value: float
    goal: str  # e.g. "<= 2"
    met: bool
    why: str = ""


def check(name: str, value: float, op: str, limit: float, why: str = "") -> Target:
    met = not math.isnan(value) and {"<=": value <= limit, "<": value < limit, ">=": value >= limit}[op]
    return Target(name, value, f"{op} {limit:g}", met, why)


QUICK_FOOTNOTE = "* quick run: indicative only; the full run decides"


def targets_table(targets: Sequence[Target], *, quick: bool) -> str:
    """The verdicts; a ``--quick`` run's sizes are too small to decide, so it marks them and says so."""
    mark = "*" if quick else ""
    rows = [(t.name, fmt(t.value, 2), t.goal, ("met" if t.met else "MISSED") + mark) for t in targets]
    out = table(rows, ("target", "measured", "goal", ""))
    return f"{out}\n{QUICK_FOOTNOTE}" if quick else out


def fmt(value: float, digits: int = 1) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean(data), indent=2) + "\n")
