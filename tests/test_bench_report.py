"""The benchmark's verdicts: a --quick run says they are indicative only; a client not measured says so."""

from __future__ import annotations

import json

import pytest

from bench import nodeclient
from bench.report import QUICK_FOOTNOTE, check, targets_table
from bench.scenarios import Outcome
from bench.scenarios.storm import node_report, node_summary

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


def test_without_node_the_storm_says_so_and_judges_only_its_own_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    why = nodeclient.unavailable()
    assert why is not None and "not measured" in why
    outcome = Outcome("storm")
    node_report(outcome, "connect storm", node_summary({}, why))
    assert outcome.rows == [("connect storm", "Node ws client", "not measured", why)]
    assert outcome.targets == []


def test_the_node_client_is_pinned_to_one_version() -> None:
    lock = json.loads((nodeclient.NODE_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/ws"]["version"] == nodeclient.pinned_version()
    assert nodeclient.pinned_version()[0].isdigit()  # an exact version, not a range
