"""The benchmark's verdicts (a --quick run says they are indicative only), the burst's distribution and bare
insert, and a load client not measured saying so."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from bench.report import QUICK_FOOTNOTE, check, distribution, targets_table
from bench.scenarios import Outcome
from bench.scenarios.burst import shadow_documents
from bench.scenarios.storm import NODE_DIR, node_report, node_summary, node_unavailable, pinned_version

TARGETS = [check("p95 connect ms", 71.7, "<=", 100), check("p99 connect ms", 105.7, "<=", 100)]


def test_a_quick_run_marks_its_verdicts_indicative() -> None:
    out = targets_table(TARGETS, quick=True)
    assert "met*" in out
    assert "MISSED*" in out
    assert out.endswith(QUICK_FOOTNOTE)


def test_a_full_run_states_its_verdicts_plainly() -> None:
    out = targets_table(TARGETS, quick=False)
    assert "*" not in out
    assert "met" in out
    assert "MISSED" in out


def test_the_burst_distribution_counts_bursts_under_the_limit() -> None:
    spread = distribution([0.57, 1.45, 0.9, 1.33, 0.93, 0.9, 0.8, 0.7, 0.95, 0.99], 1.0)
    assert (spread["min_s"], spread["p50_s"], spread["p90_s"], spread["max_s"]) == (0.57, 0.9, 1.33, 1.45)
    assert spread["under_limit"] == 8


def test_shadow_documents_are_new_documents_of_symbols_no_ingest_records() -> None:
    stored_at = datetime(2026, 11, 25, tzinfo=UTC)
    original = {"_id": ObjectId(), "symbol": "S0001USDT", "interval": "1m", "close": 1, "stored_at": None}
    (shadow,) = shadow_documents([original], stored_at)
    assert shadow["_id"] != original["_id"]
    assert (shadow["symbol"], shadow["stored_at"]) == ("X0001USDT", stored_at)
    assert {k: v for k, v in shadow.items() if k not in ("_id", "symbol", "stored_at")} == {
        "interval": "1m",
        "close": 1,
    }


def test_without_node_the_storm_says_so_and_judges_only_its_own_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    why = node_unavailable()
    assert why is not None and "not measured" in why
    outcome = Outcome("storm")
    node_report(outcome, "connect storm", node_summary({}, why))
    assert outcome.rows == [("connect storm", "Node ws client", "not measured", why)]
    assert outcome.targets == []


def test_the_node_client_is_pinned_to_one_version() -> None:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/ws"]["version"] == pinned_version()
    assert pinned_version()[0].isdigit()  # an exact version, not a range
