"""One module per benchmark scenario; each returns an :class:`Outcome`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.report import Target

SYMBOLS = ["btcusdt", "bnbusdt", "ethusdt", "solusdt", "xrpusdt"]  # the service's default payload order


@dataclass
class Outcome:
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, ...]] = field(default_factory=list)  # (scenario, subject, figures, notes)
    targets: list[Target] = field(default_factory=list)
