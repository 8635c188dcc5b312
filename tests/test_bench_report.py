"""The benchmark's verdicts: a --quick run says they are indicative only."""

from __future__ import annotations

from bench.report import QUICK_FOOTNOTE, check, targets_table

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
