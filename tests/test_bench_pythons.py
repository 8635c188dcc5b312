"""The pythons benchmark: finding interpreters, its child runs' options, and naming the fastest Python."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from bench import interpreters
from bench.options import parse_args
from bench.scenarios.pythons import child_args, combine, fastest, summarize, verdict_rows


def child_result(python: str, *, daphne_p99: float, bare_p99: float, fanout_p99: float | None) -> dict:
    """The parts of a ``python -m bench --only storm,fanout`` JSON the scenario reads (NaN is written as null)."""
    server = {"p50_ms": 10.0, "connections_per_s": 1000.0, "errors": 0}
    return {
        "machine": {"python": python},
        "load_average_before": [0.5, 0.4, 0.3],
        "scenarios": {
            "storm": {
                "servers": {"a": {**server, "p99_ms": daphne_p99}, "b": {**server, "p99_ms": bare_p99}},
                "ratio_p99_a_over_b": daphne_p99 / bare_p99,
            },
            "fanout": {"p50_ms": 5.0, "p99_ms": fanout_p99, "missing": 0 if fanout_p99 is not None else 3},
        },
    }


def measured(python: str, rounds: list[tuple[float, float, float | None]]) -> dict:
    return combine([summarize(child_result(python, daphne_p99=a, bare_p99=b, fanout_p99=f)) for a, b, f in rounds])


def test_child_runs_repeat_this_runs_storm_and_fanout_options(tmp_path: Path) -> None:
    options = parse_args(["--quick", "--connections", "300", "--rounds", "4", "--idle", "500"])
    args = child_args(options, output=tmp_path / "r.json", workdir=tmp_path / "w")
    child = parse_args(args[2:])  # after "-m bench"
    assert child.scenarios == ("storm", "fanout")
    assert (child.connections, child.rounds, child.idle, child.fanout_rounds) == (300, 4, 500, options.fanout_rounds)
    assert child.quick
    assert (child.output, child.workdir) == (tmp_path / "r.json", tmp_path / "w")


def test_pythons_is_in_the_full_suite_with_one_round_when_quick() -> None:
    assert "pythons" in parse_args([]).scenarios
    assert parse_args([]).pythons_rounds == 2
    assert parse_args(["--quick", "--only", "pythons"]).pythons_rounds == 1


def test_the_fastest_python_and_by_how_much() -> None:
    pythons = {
        "3.11": measured("3.11.7", [(100.0, 50.0, 80.0), (110.0, 50.0, 90.0)]),
        "3.12": measured("3.12.1", [(80.0, 50.0, 85.0), (90.0, 50.0, 95.0)]),
    }
    verdict = fastest(pythons)
    storm = verdict["storm_daphne_p99_ms"]
    assert storm["fastest"] == "3.12"
    assert storm["over_fastest"]["3.11"] == 105.0 / 85.0
    assert storm["clear"]  # 3.12's worst round (90) beats 3.11's best (100)
    fanout = verdict["fanout_p99_ms"]
    assert fanout["fastest"] == "3.11"
    assert fanout["clear"] is False  # 3.11's worst (90) does not beat 3.12's best (85)
    rows = verdict_rows(verdict, {"3.11": "3.11.7", "3.12": "3.12.1"})
    assert rows[0] == ("fastest by daphne storm p99", "Python 3.12.1", "3.11.7 1.24x; clear in every round")
    assert rows[1][2].endswith("within noise")


def test_a_single_round_names_the_fastest_without_judging_the_lead() -> None:
    verdict = fastest(
        {"3.11": measured("3.11.7", [(100.0, 50.0, 80.0)]), "3.13": measured("3.13.0", [(90.0, 50.0, 70.0)])}
    )
    assert verdict["storm_daphne_p99_ms"]["fastest"] == "3.13"
    assert verdict["storm_daphne_p99_ms"]["clear"] is None


def test_a_fanout_that_missed_clients_is_not_ranked() -> None:
    pythons = {"3.11": measured("3.11.7", [(100.0, 50.0, 80.0)]), "3.12": measured("3.12.1", [(90.0, 50.0, None)])}
    assert math.isnan(pythons["3.12"]["fanout_p99_ms"])
    assert pythons["3.12"]["fanout_missing"] == 3
    assert fastest(pythons)["fanout_p99_ms"]["over_fastest"] == {"3.11": 1.0}


def test_interpreters_are_looked_for_on_the_path_then_under_pyenv_newest_first(tmp_path: Path) -> None:
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "python3.12").touch()
    for version in ("3.12.1", "3.12.10", "3.12.9", "3.13.0"):
        bin_dir = tmp_path / "home" / ".pyenv" / "versions" / version / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / f"python{version[:4]}").touch()
    found = interpreters.candidates((3, 12), path=f"{tmp_path / 'nowhere'}:{on_path}", home=tmp_path / "home")
    versions = tmp_path / "home" / ".pyenv" / "versions"
    assert found == [
        str(on_path / "python3.12"),
        *(str(versions / v / "bin" / "python3.12") for v in ("3.12.10", "3.12.9", "3.12.1")),
    ]


def test_probing_an_interpreter_gives_its_real_version_and_a_broken_one_gives_none() -> None:
    here = interpreters.probe(sys.executable)
    assert here is not None
    assert here.minor == sys.version_info[:2]
    assert here.version == ".".join(map(str, sys.version_info[:3]))
    assert interpreters.probe("/bin/false") is None  # e.g. a pyenv shim for a version not selected
    assert interpreters.probe("/nonexistent/python3.12") is None


def test_the_venv_key_changes_with_either_requirements_file(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("Django==5.2.19\n")
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\npytest==9.2.0\n")
    before = interpreters.requirements_key(tmp_path)
    (tmp_path / "requirements.txt").write_text("Django==5.2.20\n")
    assert interpreters.requirements_key(tmp_path) != before
