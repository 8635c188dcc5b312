"""One module per benchmark scenario; each returns an :class:`Outcome`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench import bulkseed
from bench.report import Target

if TYPE_CHECKING:
    from bench.stack import Stack

SYMBOLS = ["btcusdt", "bnbusdt", "ethusdt", "solusdt", "xrpusdt"]  # the service's default payload order
RECORD_SYMBOLS = [
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "AVAXUSDT", "LINKUSDT", "DOTUSDT",
    "TRXUSDT", "LTCUSDT", "BCHUSDT", "NEARUSDT", "UNIUSDT", "APTUSDT", "ARBUSDT", "OPUSDT", "SUIUSDT", "FILUSDT",
]  # fmt: skip


@dataclass
class Outcome:
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, ...]] = field(default_factory=list)  # (scenario, subject, figures, notes)
    targets: list[Target] = field(default_factory=list)


def record_env(stack: Stack, database: str) -> dict[str, str]:
    """The service's environment for a large record of :data:`RECORD_SYMBOLS`' one-minute klines."""
    return stack.env(database, KLINE_SYMBOLS=",".join(RECORD_SYMBOLS), KLINE_INTERVAL="1m")


def seed_record(
    stack: Stack, database: str, klines: int, progress: Callable[[str], None]
) -> tuple[int, bulkseed.SeedResult, dict[str, Any], tuple[str, ...]]:
    """Seed a migrated database with ``klines`` one-minute klines up to now (:mod:`bench.bulkseed`);
    return the minutes per symbol, the seeding, its JSON figures and its table row."""
    assert stack.mongo is not None
    minutes = -(-klines // len(RECORD_SYMBOLS))
    now = datetime.now(UTC)
    seeded = bulkseed.seed(
        stack.mongo.uri, database, "klines", symbols=RECORD_SYMBOLS, interval="1m", minutes=minutes, now=now
    )
    insert, indexes = f"insert {seeded.insert_seconds:.0f} s", f"indexes {seeded.index_seconds:.0f} s"
    progress(f"{database}: seeded {seeded.klines:,} klines in {seeded.seconds:.0f} s ({insert}, {indexes})")
    data = {"klines": seeded.klines, "symbols": len(RECORD_SYMBOLS), "minutes_per_symbol": minutes}
    data |= {"seed_s": seeded.seconds, "seed_insert_s": seeded.insert_seconds, "seed_index_s": seeded.index_seconds}
    rate = f"{seeded.seconds:.0f} s = {seeded.klines / seeded.seconds:,.0f} klines/s"
    return minutes, seeded, data, ("seeding (pymongo insert_many, indexes after)", rate, f"{insert}, {indexes}")
