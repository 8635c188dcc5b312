"""The benchmark's options: defaults for the full run, smaller ones for ``--quick``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = (
    "storm",
    "fanout",
    "burst",
    "parse",
    "memory",
    "soak",
    "pages",
    "history",
    "bigrecord",
    "relay",
    "ingest",
    "timing",
    "reads",
    "scale",
    "pythons",
    "import",
)
OPT_IN = ("bigrecord",)  # hours at its default size: run with --only
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, kw_only=True)
class Options:
    scenarios: tuple[str, ...]
    connections: int  # connect storm: clients per round and server
    concurrency: int  # connect storm: clients in flight
    rounds: int  # connect storm: interleaved rounds per server
    idle: int  # fan-out and memory: idle clients
    daphnes: int  # fan-out: daphne processes sharing Redis
    fanout_rounds: int
    burst_symbols: int
    per_stream: int  # burst: symbols per combined stream (one ingest process each)
    burst_rounds: int  # bursts measured one after another on the same running ingests
    parse_messages: int
    soak_seconds: float
    soak_warmup: float
    soak_concurrency: int  # soak: churners in flight, per kind ("/" and streams)
    soak_rate: float  # soak: "/" churn connections started per second, all daphnes
    soak_stream_rate: float  # soak: stream churn sessions started per second
    soak_stayers: int  # soak: "/" stayers and stream stayers, each, per daphne
    soak_close_seconds: float  # soak: every coin closes this often
    uvicorn_ws: str
    history_klines: int  # history: the record's size
    history_clients: int  # history: concurrent clients
    history_seconds: float  # history: load per server and round
    history_rounds: int
    history_single: int  # history: pages asked one at a time, per server
    bigrecord_klines: int  # bigrecord: the record's size
    bigrecord_pages: int  # bigrecord: admin list pages of each kind
    import_months: int  # import: whole months of 1m klines imported
    import_rounds: int  # import: rounds, backfill and bare insert alternating first
    relay_symbols: int  # relay: one-minute streams, an update each every 250 ms
    relay_clients: int
    relay_streams_per_client: int
    relay_seconds: float  # relay: measured window after the warm-up
    ingest_symbols: int  # ingest: CPU per message and the cold start
    ingest_seconds: float  # ingest: CPU sampling window
    reads_rounds: int  # reads: rounds, model and KlineRecord interleaved
    scale_clients: int  # many clients: idle clients over the fan-out's daphne processes + Redis
    pythons_rounds: int  # pythons: each supported Python's storm + fan-out, Pythons interleaved
    output: Path
    workdir: Path
    quick: bool


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark binancews against the bare websockets ceiling and the naive design, in one run.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, short soak (about 3.5 minutes); verdicts indicative only"
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated scenarios to run (default: all of {','.join(SCENARIOS)} but {','.join(OPT_IN)})",
        default="",
    )
    parser.add_argument("-n", "--connections", type=int, help="connect storm clients per round (default 1000)")
    parser.add_argument("--concurrency", type=int, default=100, help="connect storm clients in flight (default 100)")
    parser.add_argument("--rounds", type=int, help="connect storm rounds, servers interleaved (default 3)")
    parser.add_argument("-m", "--idle", type=int, help="idle clients for fan-out and memory (default 2000)")
    parser.add_argument("--daphnes", type=int, default=2, choices=(1, 2, 3, 4), help="fan-out daphne processes")
    parser.add_argument("--fanout-rounds", type=int, help="closes published in the fan-out (default 3)")
    parser.add_argument("--burst-symbols", type=int, default=1000, help="symbols closing at once (default 1000)")
    parser.add_argument("--per-stream", type=int, default=200, help="symbols per combined stream (default 200)")
    parser.add_argument("--burst-rounds", type=int, help="bursts measured, one after another (default 10)")
    parser.add_argument("--parse-messages", type=int, help="messages for the parser rate (default 50000)")
    parser.add_argument("--soak-seconds", type=float, help="churn soak after warm-up (default 600)")
    parser.add_argument("--soak-warmup", type=float, help="soak warm-up before the baseline RSS (default 30)")
    parser.add_argument("--soak-concurrency", type=int, default=50, help="soak churners in flight, per kind")
    parser.add_argument("--soak-rate", type=float, default=200.0, help="soak: '/' churn connects/s (default 200)")
    parser.add_argument("--soak-stream-rate", type=float, default=20.0, help="soak: stream churn sessions/s")
    parser.add_argument("--soak-stayers", type=int, default=10, help="soak: stayers per daphne, each kind")
    parser.add_argument("--soak-close-seconds", type=float, default=2.0, help="soak: the coins close this often")
    parser.add_argument(
        "--uvicorn-ws",
        default="websockets-sansio",
        choices=("websockets-sansio", "websockets", "wsproto"),
        help="uvicorn's websocket implementation for scenario 1d (default websockets-sansio)",
    )
    parser.add_argument("--history-klines", type=int, help="history: klines stored (default 1000000)")
    parser.add_argument("--history-clients", type=int, default=50, help="history: concurrent clients (default 50)")
    parser.add_argument("--history-seconds", type=float, help="history: seconds of load per server and round")
    parser.add_argument("--history-rounds", type=int, help="history: rounds, servers interleaved (default 1)")
    parser.add_argument("--history-single", type=int, default=20, help="history: pages one at a time (default 20)")
    parser.add_argument("--bigrecord-klines", type=int, help="bigrecord: klines stored (default 10000000)")
    parser.add_argument("--bigrecord-pages", type=int, help="bigrecord: admin pages of each kind (default 40)")
    parser.add_argument("--import-months", type=int, help="import: months of 1m klines (default 12; quick 1)")
    parser.add_argument("--import-rounds", type=int, help="import: rounds, order alternating (default 1)")
    parser.add_argument("--relay-symbols", type=int, default=500, help="relay: 1m streams (default 500)")
    parser.add_argument("--relay-clients", type=int, help="relay: stream clients (default 1000)")
    parser.add_argument(
        "--relay-streams-per-client", type=int, default=10, help="relay: streams each client subscribes to"
    )
    parser.add_argument("--relay-seconds", type=float, help="relay: seconds measured after warm-up (default 25)")
    parser.add_argument("--ingest-symbols", type=int, default=500, help="ingest: symbols (default 500)")
    parser.add_argument("--ingest-seconds", type=float, help="ingest: CPU sampling window (default 20)")
    parser.add_argument("--reads-rounds", type=int, help="reads: rounds, subjects interleaved (default 5)")
    parser.add_argument("--scale-clients", type=int, help="many clients: idle clients, 2 daphne + Redis (10000)")
    parser.add_argument("--pythons-rounds", type=int, help="pythons: rounds over every Python (default 2)")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="JSON results file")
    parser.add_argument("--workdir", type=Path, default=RESULTS / "work", help="logs and data, wiped at start")
    args = parser.parse_args(argv)

    quick = args.quick
    scenarios = tuple(s.strip() for s in args.only.split(",") if s.strip()) or tuple(
        s for s in SCENARIOS if s not in OPT_IN
    )
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")

    def pick(value: object, full: object, small: object) -> object:
        return value if value is not None else (small if quick else full)

    options = Options(
        scenarios=scenarios,
        connections=pick(args.connections, 1000, 200),
        concurrency=args.concurrency,
        rounds=pick(args.rounds, 3, 2),
        idle=pick(args.idle, 2000, 300),
        daphnes=args.daphnes,
        fanout_rounds=pick(args.fanout_rounds, 3, 2),
        burst_symbols=args.burst_symbols,
        per_stream=args.per_stream,
        burst_rounds=pick(args.burst_rounds, 10, 3),
        parse_messages=pick(args.parse_messages, 50000, 20000),
        soak_seconds=pick(args.soak_seconds, 600.0, 20.0),
        soak_warmup=pick(args.soak_warmup, 30.0, 5.0),
        soak_concurrency=args.soak_concurrency,
        soak_rate=args.soak_rate,
        soak_stream_rate=args.soak_stream_rate,
        soak_stayers=args.soak_stayers,
        soak_close_seconds=args.soak_close_seconds,
        uvicorn_ws=args.uvicorn_ws,
        history_klines=pick(args.history_klines, 1_000_000, 100_000),
        history_clients=args.history_clients,
        history_seconds=pick(args.history_seconds, 20.0, 10.0),
        history_rounds=pick(args.history_rounds, 1, 1),
        history_single=args.history_single,
        bigrecord_klines=pick(args.bigrecord_klines, 10_000_000, 100_000),
        bigrecord_pages=pick(args.bigrecord_pages, 40, 10),
        import_months=pick(args.import_months, 12, 1),
        import_rounds=pick(args.import_rounds, 1, 1),
        relay_symbols=args.relay_symbols,
        relay_clients=pick(args.relay_clients, 1000, 300),
        relay_streams_per_client=args.relay_streams_per_client,
        relay_seconds=pick(args.relay_seconds, 25.0, 10.0),
        ingest_symbols=args.ingest_symbols,
        ingest_seconds=pick(args.ingest_seconds, 20.0, 10.0),
        reads_rounds=pick(args.reads_rounds, 5, 3),
        scale_clients=pick(args.scale_clients, 10_000, 1_000),
        pythons_rounds=pick(args.pythons_rounds, 2, 1),
        output=args.output,
        workdir=args.workdir,
        quick=quick,
    )
    for name in (
        "connections",
        "concurrency",
        "rounds",
        "idle",
        "fanout_rounds",
        "burst_symbols",
        "per_stream",
        "burst_rounds",
        "soak_concurrency",
        "soak_stayers",
        "history_klines",
        "history_clients",
        "history_rounds",
        "history_single",
        "bigrecord_klines",
        "bigrecord_pages",
        "import_months",
        "import_rounds",
        "relay_symbols",
        "relay_clients",
        "relay_streams_per_client",
        "ingest_symbols",
        "reads_rounds",
        "scale_clients",
        "pythons_rounds",
    ):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("soak_rate", "soak_stream_rate", "soak_close_seconds"):
        if getattr(options, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return options
