"""The benchmark's options: sizes for the full run and smaller ones for ``--quick``; fixed parameters."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = (
    "parse", "timing", "storm", "fanout", "scale", "burst", "memory", "soak", "pages", "relay", "ingest", "reads",
    "replay", "archive", "export", "pythons", "import", "history", "bigrecord",
)  # fmt: skip
OPT_IN = ("bigrecord", "export")  # long at their default sizes (bigrecord: hours): run with --only
RESULTS = Path(__file__).resolve().parent / "results"
HISTORY_MIN_KLINES = 20 * 1500

# --flag: (full run, --quick, meaning). Every figure in bench/README.md was measured at these.
SIZES: dict[str, tuple[float, float, str]] = {
    "connections": (1000, 200, "connect storm: clients per round and server"),
    "rounds": (3, 2, "connect storm: rounds, servers interleaved"),
    "idle": (2000, 300, "fan-out, memory, timing: idle clients"),
    "fanout_rounds": (3, 2, "fan-out and many clients: closes measured"),
    "burst_rounds": (10, 3, "burst: bursts measured one after another"),
    "parse_messages": (50000, 20000, "parser: frames"),
    "soak_seconds": (600.0, 20.0, "churn soak: seconds after the warm-up"),
    "soak_warmup": (30.0, 5.0, "churn soak: warm-up seconds"),
    "history_klines": (1_000_000, 100_000, "history: klines stored"),
    "history_seconds": (20.0, 10.0, "history: seconds of load per server"),
    "bigrecord_klines": (10_000_000, 100_000, "bigrecord: klines stored"),
    "bigrecord_pages": (40, 10, "bigrecord: admin pages of each kind"),
    "import_months": (12, 1, "import: months of 1m archive files"),
    "relay_clients": (1000, 300, "relay: stream clients"),
    "relay_seconds": (25.0, 10.0, "relay: seconds measured after a 5 s warm-up"),
    "ingest_seconds": (20.0, 10.0, "ingest: CPU sampling window"),
    "reads_rounds": (5, 3, "reads: rounds, subjects interleaved"),
    "scale_clients": (10_000, 1_000, "many clients: idle clients"),
    "pythons_rounds": (2, 1, "pythons: rounds over every Python found"),
    "replay_events": (20_000, 4_000, "replay: events to one client (and a twentieth to each of 100)"),
    "replay_rounds": (3, 2, "replay: rounds, daphne and the bare server interleaved"),
    "export_minutes": (525_600, 43_200, "export: klines of BTCUSDT 1m exported to Parquet (a year; a month)"),
    "archive_downloads": (3, 2, "archive: warm downloads of the month's zip after the cold one"),
}


@dataclass(frozen=True, kw_only=True)
class Options:
    scenarios: tuple[str, ...]
    quick: bool
    output: Path
    workdir: Path
    # sizes (SIZES)
    connections: int
    rounds: int
    idle: int
    fanout_rounds: int
    burst_rounds: int
    parse_messages: int
    soak_seconds: float
    soak_warmup: float
    history_klines: int
    history_seconds: float
    bigrecord_klines: int
    bigrecord_pages: int
    import_months: int
    relay_clients: int
    relay_seconds: float
    ingest_seconds: float
    reads_rounds: int
    scale_clients: int
    pythons_rounds: int
    replay_events: int
    replay_rounds: int
    export_minutes: int
    archive_downloads: int
    # fixed parameters
    concurrency: int = 100  # connect storm: clients in flight (also how fast idle clients are opened)
    daphnes: int = 2  # daphne processes sharing Redis (fan-out, many clients, soak, relay)
    burst_symbols: int = 1000  # symbols closing at once
    per_stream: int = 200  # burst: symbols per combined stream, one ingest each
    soak_concurrency: int = 50  # soak: churners in flight, per kind ("/" and streams)
    soak_rate: float = 200.0  # soak: "/" churn connections started per second, all daphnes
    soak_stream_rate: float = 20.0  # soak: stream churn sessions started per second
    soak_stayers: int = 10  # soak: "/" stayers and stream stayers, each, per daphne
    soak_close_seconds: float = 2.0  # soak: every coin closes this often
    uvicorn_ws: str = "websockets-sansio"  # uvicorn's websocket implementation, storm subject d
    history_clients: int = 50  # history: concurrent clients
    history_rounds: int = 1  # history: rounds, servers interleaved in rotated order
    history_single: int = 20  # history: pages asked one at a time, per server
    import_rounds: int = 1  # import: rounds, backfill and bare insert alternating first
    relay_symbols: int = 500  # relay: one-minute streams, an update each every 250 ms
    relay_streams_per_client: int = 10  # relay: streams each client names
    ingest_symbols: int = 500  # ingest: symbols for the CPU figure and the cold start


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark binancews against the bare websockets ceiling and the naive design, in one run.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes; verdicts indicative only")
    parser.add_argument(
        "--only", default="", help=f"comma-separated of {','.join(SCENARIOS)} (default: all but {','.join(OPT_IN)})"
    )
    for name, (full, small, meaning) in SIZES.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=type(full), help=f"{meaning} (default {full:,g}; --quick {small:,g})")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="JSON results file")
    parser.add_argument("--workdir", type=Path, default=RESULTS / "work", help="logs and data, wiped at start")
    args = parser.parse_args(argv)

    scenarios = tuple(s.strip() for s in args.only.split(",") if s.strip())
    scenarios = scenarios or tuple(s for s in SCENARIOS if s not in OPT_IN)
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    sizes = {}
    for name, (full, small, _meaning) in SIZES.items():
        value = getattr(args, name)
        value = (small if args.quick else full) if value is None else value
        if value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
        sizes[name] = type(full)(value)
    if sizes["history_klines"] < HISTORY_MIN_KLINES:  # history pages are full pages of 1,500, from 20 symbols
        parser.error(f"--history-klines must be at least {HISTORY_MIN_KLINES:,} (20 symbols x a page of 1,500)")
    return Options(scenarios=scenarios, quick=args.quick, output=args.output, workdir=args.workdir, **sizes)
